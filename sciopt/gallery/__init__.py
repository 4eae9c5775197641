"""The problem gallery: runs `problems/*.toml` and writes a report."""

from ._report import format_table as format_table, write_report as write_report
from ._row import GalleryRow as GalleryRow
from ._run import run_gallery as run_gallery
