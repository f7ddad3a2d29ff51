"""The global victim-identification indicator (docs/indicator.md).

`load_table` reads the merged victims; `compute` gives every number of the indicator
(counts, the index, Kaplan-Meier time to identification, the multiple-systems
population estimate); `charts.write_charts` draws them. lifelines, statsmodels and
matplotlib are imported only here, when an indicator is computed.
"""

from ridgeline.indicator.core import Indicator, compute
from ridgeline.indicator.data import VictimTable, load_table, table_from_records

__all__ = ["Indicator", "VictimTable", "compute", "load_table", "table_from_records"]
