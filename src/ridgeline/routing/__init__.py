"""Routing received reports to the agencies that can act, and what those agencies see.

`Geolocator` places IP capture events offline (iptocc, and a MaxMind-format city
database when the operator supplies one); `route` turns a report's located subjects into
agencies through the routing-rules table (with a fallback desk), never by the
reporter's own address; `record_many` stores to which agencies each report was made
available, when and why. `ridgeline.routing.access` is what a `law-enforcement` key may
see: only its agency's reports, files locked under the Wilson rule until a warrant is
entered, preservation deadlines, every view logged. See docs/intake.md (Routing).
"""

from ridgeline.routing.core import (
    DEFAULT_FALLBACK,
    Availability,
    BadRoutingRules,
    RoutingTable,
    Rule,
    StoredAvailability,
    available_to,
    import_csv,
    import_file,
    import_rules,
    is_available,
    list_rules,
    load_table,
    make_available,
    parse_rules_csv,
    places,
    record,
    record_many,
    reports_for,
    require_available,
    route,
    route_places,
)
from ridgeline.routing.geo import ENV_CITY_DB, BadCityDatabase, Geolocator, Place

__all__ = [
    "DEFAULT_FALLBACK",
    "ENV_CITY_DB",
    "Availability",
    "BadCityDatabase",
    "BadRoutingRules",
    "Geolocator",
    "Place",
    "RoutingTable",
    "Rule",
    "StoredAvailability",
    "available_to",
    "import_csv",
    "import_file",
    "import_rules",
    "is_available",
    "list_rules",
    "load_table",
    "make_available",
    "parse_rules_csv",
    "places",
    "record",
    "record_many",
    "reports_for",
    "require_available",
    "route",
    "route_places",
]
