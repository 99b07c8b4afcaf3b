"""Incremental state kept with the data: processed files and SQL cursor high-water marks."""

from etl_platform.state.cursor import CursorState, HighWater
from etl_platform.state.files import FileRecord, FileState

__all__ = ["CursorState", "FileRecord", "FileState", "HighWater"]
