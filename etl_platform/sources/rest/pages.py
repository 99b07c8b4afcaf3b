"""Raw pages kept in the lake, gzip-compressed, named by pipeline, run and page, removed after their retention.

They are the evidence of what the API answered: a quarantined row's `source_file` names its
page, so it can be looked at without calling the API again (a quarantine replay reads the
quarantine table itself and never calls it either, engine/replay.py).
"""

from __future__ import annotations

import datetime
import gzip
import re

from etl_platform.spec.rest import RawPages
from etl_platform.stores import FileStore

PREFIX = "_raw/rest"


class PageKeeper:
    """Writes each page of one run; on opening, removes pages of this pipeline older than the retention."""

    def __init__(self, spec: RawPages, lake: FileStore | None, pipeline: str, run_id: str):
        self.store = lake if spec.keep and run_id else None  # a preview (no run) writes nothing
        self.folder = f"{PREFIX}/{pipeline}/{run_id or 'local'}/"
        if self.store is not None:
            cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=spec.retention_days)
            old = [f.key for f in self.store.list(f"{PREFIX}/{pipeline}/") if _aware(f.modified) < cutoff]
            if old:
                self.store.delete(old)

    def name(self, resource: str, parent_key: str, number: int) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", parent_key)
        part = f"{resource}-{safe}-" if parent_key else f"{resource}-"
        return f"{self.folder}{part}page-{number:06d}.json.gz"

    def keep(self, name: str, body: bytes) -> str:
        """The page's name as rows point at it: its URL in the lake, or its name when pages are not kept."""
        if self.store is None:
            return name
        self.store.put_bytes(name, gzip.compress(body, compresslevel=1))
        return self.store.file_url(name)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
