"""`etl infer FILE...`: profile files and print a proposed pipeline for each, valid as printed."""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path

import click
import pyarrow as pa
from ruamel.yaml import YAML

from etl_platform.cli.common import EXIT_FAILED, EXIT_OK, settings
from etl_platform.errors import EtlError
from etl_platform.ml.inference import FileProfile, link_foreign_keys, profile_table
from etl_platform.sources import PROVENANCE, open_file_source
from etl_platform.spec import spec_from_document
from etl_platform.spec.sources import SOURCE_TYPES
from etl_platform.stores import LocalStore, StoredFile

_KINDS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}


def source_type(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".zip")]
    kind = _KINDS.get(suffixes[-1].lower() if suffixes else "")
    if kind is None:
        raise EtlError(f"{path}: cannot tell the format from the name; expected one of {', '.join(_KINDS)}")
    return kind


def sample(path: Path, kind: str, rows: int) -> pa.Table:
    """Up to `rows` rows read by the platform's own source for the format."""
    store = LocalStore(path.parent)
    stat = path.stat()
    file = StoredFile(path.name, stat.st_size, "", datetime.datetime.now(datetime.UTC), str(path))
    options = {"type": kind, "path": path.name}
    if path.suffix == ".tsv":
        options["delimiter"] = "\t"
    spec = SOURCE_TYPES[kind].model_validate(options)
    tables, seen = [], 0
    for chunk in open_file_source(spec, [file], store).read(min(rows, 100_000)):
        tables.append(chunk.table.drop_columns([c for c in PROVENANCE if c in chunk.table.column_names]))
        seen += len(chunk.table)
        if seen >= rows:
            break
    tables = [t for t in tables if t.num_columns]
    return pa.concat_tables(tables, promote_options="permissive").slice(0, rows) if tables else pa.table({})


def proposal(profile: FileProfile, path: Path, kind: str, landing: Path) -> dict:
    """The pipeline document for one profiled file."""
    stem = re.sub(r"[^a-z0-9_]", "_", path.name.split(".")[0].lower()).strip("_") or "data"
    stem = stem if stem[0].isalpha() else f"f_{stem}"
    try:
        location = str(path.resolve().relative_to(landing.resolve()))
    except ValueError:
        location = str(path.resolve())
    casts = {c.name: c.type for c in profile.columns if c.type != "text" and kind in ("csv", "json", "jsonl")}
    masks = {c.name: c.pii for c in profile.columns if c.pii}
    rules = [{"field": c.name, "rule": "NotNull"} for c in profile.columns if c.nulls == 0 and profile.rows]
    key = profile.key_candidates[:1]
    document: dict = {"id": stem, "description": f"Inferred from {path.name}", "source": {"type": kind, "path": location}}
    transforms = []
    if casts:
        transforms.append({"cast": casts})
    if masks:
        transforms.append({"mask": masks})
    if transforms:
        document["transforms"] = transforms
    if rules:
        document["quality"] = {"rules": rules}
    document["destination"] = (
        {"dataset": f"raw.{stem}", "write": "merge", "primary_key": key}
        if key
        else {
            "dataset": f"raw.{stem}",
            "write": "append",
        }
    )
    return document


def header(profile: FileProfile) -> list[str]:
    lines = [
        f"Inferred from {profile.name}: {profile.rows:,} rows sampled",
        "column: type (confidence), semantic type (confidence)",
    ]
    for c in profile.columns:
        semantic = f", {c.semantic} ({c.semantic_confidence:.0%})" if c.semantic else ""
        pii = f"  PII: masked with {c.pii}" if c.pii else ""
        lines.append(f"  {c.name}: {c.type} ({c.type_confidence:.0%}){semantic}, {c.nulls} null{pii}")
    lines.append(f"candidate primary keys: {', '.join(profile.key_candidates) or 'none'}")
    for column, target in profile.foreign_keys.items():
        lines.append(f"foreign-key candidate: {column} -> {target}")
    return lines


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sample-rows", default=10_000, show_default=True, type=click.IntRange(min=1), help="Rows read from each file.")
def infer(files: tuple[Path, ...], sample_rows: int) -> None:
    """Profile FILES (CSV, JSON, JSON Lines, Parquet) and print a proposed pipeline YAML for each.

    Types and semantic types (email, phone, URL, IP, postal code, date, currency amount,
    credit-card-like and national-id-like numbers) come with a confidence; PII columns get a
    `mask`, a unique non-null column becomes the merge key, and columns whose values lie in
    another file's key are reported as foreign-key candidates. The YAML passes `etl validate`.
    """
    landing = Path(settings().landing)
    profiles, kinds = [], []
    try:
        for path in files:
            kind = source_type(path)
            profiles.append(profile_table(path.name, sample(path, kind, sample_rows)))
            kinds.append(kind)
    except EtlError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(EXIT_FAILED)
    link_foreign_keys(profiles)
    yaml = YAML()
    yaml.default_flow_style = None
    used: set[str] = set()
    for path, kind, profile in zip(files, kinds, profiles, strict=True):
        document = proposal(profile, path, kind, landing)
        if document["id"] in used:  # orders.csv and orders.jsonl: two pipelines, two datasets
            document["id"] = f"{document['id']}_{kind}"
            document["destination"]["dataset"] = f"raw.{document['id']}"
        used.add(document["id"])
        spec_from_document(document)  # what is printed is a valid pipeline
        click.echo("\n".join(f"# {line}" for line in header(profile)))
        yaml.dump(document, sys.stdout)
        click.echo("---" if path != files[-1] else "")
    sys.exit(EXIT_OK)
