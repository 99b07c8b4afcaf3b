"""Pipelines declared in Python: specs, and frame pipelines whose rows a function computes.

A `.py` file in the pipelines folder may define `PipelineSpec` objects, functions decorated
with `@frame_pipeline(spec, model=...)` and `CustomChecks` objects (custom row checks that the
folder's YAML files may name); the loader picks up every one at module level.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_platform.errors import SpecError
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.quality import CustomChecks


@dataclass(frozen=True)
class FramePipeline:
    """A pipeline whose source is `compute(warehouse)`: a pandas, polars or Arrow frame.

    `model`, a Pandera DataFrameModel, validates the frame's rows: failing rows are quarantined,
    and each of the model's checks is an asset check, like a rule's.
    """

    spec: PipelineSpec
    compute: Callable[[Any], Any]
    model: type | None = None


def frame_pipeline(spec: PipelineSpec, model: type | None = None) -> Callable[[Callable[[Any], Any]], FramePipeline]:
    if spec.source.type != "frame":
        raise SpecError(f"{spec.origin}: a frame pipeline needs `source: {{type: frame}}`")

    def decorate(compute: Callable[[Any], Any]) -> FramePipeline:
        return FramePipeline(spec, compute, model)

    return decorate


def load_python_pipelines(path: Path, custom_checks: CustomChecks) -> list[PipelineSpec | FramePipeline]:
    """Import a pipelines module by path and collect its specs and frame pipelines.

    The module's `CustomChecks` objects are merged into `custom_checks`, the registry's own.
    """
    name = f"etl_pipelines_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(f"{path}: cannot load pipelines module: {type(exc).__name__}: {exc}") from exc
    for checks in (v for v in vars(module).values() if isinstance(v, CustomChecks)):
        try:
            custom_checks.merge(checks)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None
    found = [v for v in vars(module).values() if isinstance(v, PipelineSpec | FramePipeline)]
    wrapped = {id(f.spec) for f in found if isinstance(f, FramePipeline)}
    return [f for f in found if not (isinstance(f, PipelineSpec) and id(f) in wrapped)]
