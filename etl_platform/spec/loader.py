"""Load pipeline files into validated specs, with errors that point at file, line and field.

YAML is parsed with ruamel's round-trip loader because it keeps the line of every key; a
pydantic error's location (a path of keys and indexes) is walked through the parsed document
to find the line the user has to edit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from etl_platform.errors import SpecError
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.quality import CustomChecks
from etl_platform.spec.reach import PathRoots
from etl_platform.spec.sources import SOURCE_TYPES
from etl_platform.spec.steps import TRANSFORM_STEPS

PIPELINE_SUFFIXES = (".yaml", ".yml")


def _line_of(document: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node on `loc` that the document has."""
    node, line = document, None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union tags (`source.csv.path` -> `source.path`) from an error location."""
    if len(loc) > 1 and loc[0] == "source" and loc[1] in SOURCE_TYPES:
        return (loc[0], *loc[2:])
    if len(loc) > 3 and loc[0] == "transforms" and loc[2] in TRANSFORM_STEPS and loc[3] == loc[2]:
        return (*loc[:3], *loc[4:])
    return loc


def _field_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _as_model(annotation: Any) -> type[BaseModel] | None:
    candidates = getattr(annotation, "__args__", None) or (annotation,)
    return next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _model_at(document: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec model that validates the mapping at `loc` (a source by its type, a transform by its key)."""
    if not loc:
        return PipelineSpec
    if loc == ("source",):
        source = document.get("source")
        return SOURCE_TYPES.get(source.get("type")) if isinstance(source, dict) else None
    if len(loc) == 2 and loc[0] == "transforms":
        step = document["transforms"][loc[1]]
        return TRANSFORM_STEPS.get(next(iter(step))) if isinstance(step, dict) and len(step) == 1 else None
    parent = _model_at(document, loc[:-1])
    field = parent.model_fields.get(loc[-1]) if parent else None
    return _as_model(field.annotation) if field else None


_PATTERNS = {
    "tags": "tag keys and values hold only letters, digits, '_', '.' and '-' (63 at most)",
    "dataset": "a dataset is `schema.table` in lowercase letters, digits and '_'",
    "table": "a sql source's table is `[schema.]table` in letters, digits, '_' and '$'; write anything else as a `query`",
}
_IDENTIFIER = "lowercase letters, digits and '_', starting with a letter"


def _message(error: dict[str, Any], loc: tuple[Any, ...], document: Any) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        loc = tuple(part for part in loc if part != "[key]")
        rule = next((text for field, text in _PATTERNS.items() if field in loc), _IDENTIFIER)
        return f"{_field_path(loc)}: {error['input']!r} is not allowed; {rule}"
    if kind == "extra_forbidden":
        model = _model_at(document, loc[:-1])
        hint = f"; allowed keys: {', '.join(model.model_fields)}" if model else ""
        return f"{_field_path(loc)}: unknown key {loc[-1]!r}{hint}"
    if kind == "missing":
        return f"{_field_path(loc)}: required key {loc[-1]!r} is missing"
    if kind == "unknown_transform":
        found = error.get("input")
        name = ", ".join(map(repr, found)) if isinstance(found, dict) else repr(found)
        return f"{_field_path(loc)}: unknown transform {name}; {error['msg']}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{_field_path(loc)}: {message}" if loc else message


def spec_from_document(
    document: Any, origin: Path | None = None, custom_checks: CustomChecks | None = None, roots: PathRoots | None = None
) -> PipelineSpec:
    """Validate one parsed pipeline document; errors name `origin`, the line and the field.

    Rules may name the checks of `custom_checks` (the pipeline registry's, in a folder's load);
    source paths must lie inside `roots` (the deployment's landing zone and allowed roots) when given.
    """
    where = str(origin) if origin else "pipeline"
    if not isinstance(document, dict):
        raise SpecError(f"{where}: a pipeline file must be a mapping with keys such as id, source, destination")
    try:
        spec = PipelineSpec.model_validate(document, context={"custom_checks": custom_checks, "allowed_roots": roots})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = _clean_loc(tuple(error["loc"]))
            line = _line_of(document, loc)
            prefix = f"{where}:{line}" if line else where
            lines.append(f"{prefix}: {_message(error, loc, document)}")
        raise SpecError("\n".join(lines)) from None
    if origin is not None and spec.source.type == "frame":
        raise SpecError(
            f"{where}: source type `frame` is for pipelines declared in Python with `@frame_pipeline` (etl_platform.spec)"
        )
    spec._file = origin
    return spec


def load_pipeline_file(path: Path, custom_checks: CustomChecks | None = None, roots: PathRoots | None = None) -> PipelineSpec:
    """Parse and validate one pipeline YAML file, whose rules may name the checks of `custom_checks`."""
    try:
        document = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{path}{line}: invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read pipeline file: {exc}") from None
    return spec_from_document(document, path, custom_checks, roots)


def pipeline_files(folder: Path, suffixes: tuple[str, ...] = PIPELINE_SUFFIXES) -> list[Path]:
    """The pipeline files in `folder` (YAML by default), sorted by name."""
    if not folder.is_dir():
        raise SpecError(f"{folder}: pipelines folder does not exist; set ETL_PIPELINES_DIR or create it")
    return sorted(p for p in folder.iterdir() if p.suffix in suffixes and p.is_file() and not p.name.startswith("_"))


def load_pipeline_files(
    paths: Iterable[Path], custom_checks: CustomChecks | None = None, roots: PathRoots | None = None
) -> list[PipelineSpec]:
    """Load every file, collecting all errors into one SpecError so a user fixes them in one go."""
    specs, errors = [], []
    for path in paths:
        try:
            specs.append(load_pipeline_file(path, custom_checks, roots))
        except SpecError as exc:
            errors.append(str(exc))
    if errors:
        raise SpecError("\n".join(errors))
    return specs
