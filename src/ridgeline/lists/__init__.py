"""Hash lists and their entries: create, add, disable, delete, import.

Review (multi-review before listing), audits, exchange formats and signed releases
build on these functions in their own modules.
"""

from ridgeline.lists.core import (
    ENTRY_STATUSES,
    add_entry,
    create_list,
    delete_entry,
    entry_to_json,
    get_entry,
    get_list,
    is_matchable,
    list_lists,
    list_to_json,
    record_change,
    record_event,
    set_entry_enabled,
    set_entry_status,
    update_list,
)
from ridgeline.lists.importing import ImportReport, import_file, parse_records

__all__ = [
    "ENTRY_STATUSES",
    "ImportReport",
    "add_entry",
    "create_list",
    "delete_entry",
    "entry_to_json",
    "get_entry",
    "get_list",
    "import_file",
    "is_matchable",
    "list_lists",
    "list_to_json",
    "parse_records",
    "record_change",
    "record_event",
    "set_entry_enabled",
    "set_entry_status",
    "update_list",
]
