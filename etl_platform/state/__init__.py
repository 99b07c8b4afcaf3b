"""Incremental state kept with the data: processed files and sources' saved positions."""

from etl_platform.state.cursor import HighWater
from etl_platform.state.files import FileRecord, FileState, ProcessedFiles
from etl_platform.state.positions import Position, saved_position

__all__ = ["FileRecord", "FileState", "HighWater", "Position", "ProcessedFiles", "saved_position"]
