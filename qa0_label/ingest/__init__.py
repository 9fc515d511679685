"""Import of EB and detail tables (read, validate, write; all or nothing) and export of labels.

The public surface; the modules behind it follow the path of a file: `columns` (the format as data),
`read`, `validate`, `write`, `importer` (streaming, whole-file rules, one transaction) and `export`.
"""

from qa0_label.ingest.columns import EXPORT_COLUMNS, LINE_COLUMN
from qa0_label.ingest.export import export_labels, export_labels_frame, spreadsheet_safe
from qa0_label.ingest.importer import import_file, import_frames
from qa0_label.ingest.problems import ImportInterrupted, ImportRefused, Problem, upload_problem
from qa0_label.ingest.read import read_chunks, read_table
from qa0_label.ingest.validate import validate_details, validate_ebs
from qa0_label.store.models import ARCHIVE_LABELER

__all__ = [
    "ARCHIVE_LABELER",
    "EXPORT_COLUMNS",
    "LINE_COLUMN",
    "ImportInterrupted",
    "ImportRefused",
    "Problem",
    "export_labels",
    "export_labels_frame",
    "import_file",
    "import_frames",
    "read_chunks",
    "read_table",
    "spreadsheet_safe",
    "upload_problem",
    "validate_details",
    "validate_ebs",
]
