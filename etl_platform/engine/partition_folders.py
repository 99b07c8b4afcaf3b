"""A dynamic-partitioned pipeline's partitions as they lie in the landing zone: one per sub-folder.

The source path names the folder with `{partition}` (etl_platform.spec.partitions); listing it with
`{partition}` as a wildcard finds every partition's files. A folder's fingerprint changes whenever
one of its files is added, replaced or removed, so a sensor can key its runs by folder and content.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from etl_platform.spec.partitions import KEY_PATTERN
from etl_platform.stores import FileLocation


@dataclass(frozen=True)
class PartitionFolders:
    """`fingerprints`: key -> content fingerprint; `refused`: folder names that cannot be keys."""

    fingerprints: dict[str, str]
    refused: list[str]


def partition_folders(location: FileLocation) -> PartitionFolders:
    """The sub-folders that hold matching files under `location` (the path with `{partition}` as `*`)."""
    files: dict[str, list[str]] = {}
    for file in location.matching():
        folder = file.key[len(location.prefix) :].partition("/")[0]
        files.setdefault(folder, []).append(f"{file.key}\0{file.version}")
    fingerprints = {
        folder: hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]
        for folder, entries in files.items()
        if re.match(KEY_PATTERN, folder)
    }
    return PartitionFolders(dict(sorted(fingerprints.items())), sorted(set(files) - set(fingerprints)))
