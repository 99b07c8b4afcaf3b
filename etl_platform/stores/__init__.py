"""File stores: where input files land and file datasets are published (a local folder or S3)."""

from etl_platform.stores.base import FileStore, StoredFile
from etl_platform.stores.local import LocalStore
from etl_platform.stores.location import FileLocation, glob_matcher, open_store, split_glob
from etl_platform.stores.roots import AllowedRoots
from etl_platform.stores.s3 import S3Store

__all__ = [
    "AllowedRoots",
    "FileLocation",
    "FileStore",
    "LocalStore",
    "S3Store",
    "StoredFile",
    "glob_matcher",
    "open_store",
    "split_glob",
]
