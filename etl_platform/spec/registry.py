"""A validated set of pipelines and the dependency graph between them.

Dependencies come from `dependencies:` and from reading another pipeline's dataset (a lookup,
or a SQL source over the warehouse). The registry refuses unknown dependencies, cycles,
duplicate ids and two pipelines publishing one dataset, naming the files involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import sqlglot

from etl_platform.errors import SpecError
from etl_platform.spec.loader import load_pipeline_files, pipeline_files
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.python import FramePipeline, load_python_pipelines
from etl_platform.spec.quality import CustomChecks
from etl_platform.spec.sources import SqlSource
from etl_platform.spec.steps import LookupStep


def datasets_read(spec: PipelineSpec) -> set[str]:
    """Warehouse datasets a pipeline reads: lookup datasets and tables of a warehouse SQL source."""
    read = {step.lookup.dataset for step in spec.transforms if isinstance(step, LookupStep)}
    source = spec.source
    if isinstance(source, SqlSource) and source.url is None:
        if source.table:
            read.add(source.table)
        else:
            for table in sqlglot.parse_one(source.query, read="duckdb").find_all(sqlglot.exp.Table):
                read.add(f"{table.db}.{table.name}" if table.db else table.name)
    return read


def load_python_folder(folder: Path) -> tuple[list[PipelineSpec | FramePipeline], CustomChecks]:
    """The Python pipeline files of `folder`: their pipelines, and the custom checks YAML rules may name."""
    custom_checks = CustomChecks()
    python = [p for path in pipeline_files(folder, (".py",)) for p in load_python_pipelines(path, custom_checks)]
    return python, custom_checks


def specs_of(declared: Iterable[PipelineSpec | FramePipeline]) -> list[PipelineSpec]:
    return [p.spec if isinstance(p, FramePipeline) else p for p in declared]


class PipelineRegistry:
    """Pipelines by id, with upstream edges resolved and checked."""

    def __init__(self, specs: Iterable[PipelineSpec]):
        self.frames: dict[str, FramePipeline] = {}  # frame pipelines' functions, by pipeline id
        self.custom_checks = CustomChecks()  # the checks its pipeline files may name (see from_folder)
        self._specs: dict[str, PipelineSpec] = {}
        by_dataset: dict[str, PipelineSpec] = {}
        errors = []
        for spec in specs:
            if spec.id in self._specs:
                errors.append(f"duplicate pipeline id {spec.id!r} in {self._specs[spec.id].origin} and {spec.origin}")
                continue
            dataset = spec.destination.dataset
            if dataset in by_dataset:
                errors.append(
                    f"{spec.origin}: dataset {dataset!r} is already published by pipeline "
                    f"{by_dataset[dataset].id!r} ({by_dataset[dataset].origin}); each dataset has one pipeline"
                )
            self._specs[spec.id] = spec
            by_dataset[dataset] = spec
        self._upstream: dict[str, set[str]] = {}
        for spec in self._specs.values():
            upstream = set()
            for dep in spec.dependencies:
                if dep not in self._specs:
                    known = ", ".join(sorted(self._specs)) or "none"
                    errors.append(f"{spec.origin}: dependencies: unknown pipeline {dep!r}; known pipelines: {known}")
                upstream.add(dep)
            upstream |= {by_dataset[d].id for d in datasets_read(spec) if d in by_dataset and d != spec.destination.dataset}
            self._upstream[spec.id] = upstream
        if errors:
            raise SpecError("\n".join(errors))
        try:
            self._levels = self._compute_levels()
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            files = ", ".join(sorted({self._specs[p].origin for p in exc.args[1]}))
            raise SpecError(f"dependency cycle: {cycle} (in {files}); remove one of these dependencies") from None

    @classmethod
    def from_folder(cls, folder: Path, extra: Iterable[PipelineSpec | FramePipeline] = ()) -> PipelineRegistry:
        """Load the YAML and Python pipeline files of `folder`, plus pipelines declared elsewhere in Python.

        The Python files load first: the custom checks they declare are what the YAML files' rules may name.
        """
        python, custom_checks = load_python_folder(folder)
        declared = [*python, *extra]
        yaml = load_pipeline_files(pipeline_files(folder), custom_checks)
        registry = cls([*yaml, *specs_of(declared)])
        registry.frames = {p.spec.id: p for p in declared if isinstance(p, FramePipeline)}
        registry.custom_checks = custom_checks
        return registry

    def _compute_levels(self) -> list[list[str]]:
        sorter = TopologicalSorter(self._upstream)
        sorter.prepare()
        levels = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            levels.append(ready)
            sorter.done(*ready)
        return levels

    def __iter__(self) -> Iterator[PipelineSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, pipeline_id: str) -> bool:
        return pipeline_id in self._specs

    def get(self, pipeline_id: str) -> PipelineSpec:
        if pipeline_id not in self._specs:
            known = ", ".join(sorted(self._specs)) or "none"
            raise SpecError(f"unknown pipeline {pipeline_id!r}; known pipelines: {known}")
        return self._specs[pipeline_id]

    def upstream(self, pipeline_id: str) -> list[PipelineSpec]:
        """Pipelines whose datasets `pipeline_id` depends on."""
        return [self._specs[p] for p in sorted(self._upstream[pipeline_id])]

    def unpublished_lookups(self, published_elsewhere: set[str]) -> list[str]:
        """Lookups of a dataset that neither a pipeline nor `published_elsewhere` (the dbt models) publishes.

        Such a lookup fails every run ("does not exist yet") and is no edge of the plan: name it
        before a run does.
        """
        published = {spec.destination.dataset for spec in self} | published_elsewhere
        errors = []
        for spec in self:
            for index, step in enumerate(spec.transforms):
                dataset = step.lookup.dataset if isinstance(step, LookupStep) else None
                if dataset is not None and dataset not in published:
                    errors.append(
                        f"{spec.origin}: transforms[{index}].lookup.dataset: {dataset!r} is published by no pipeline"
                        f"{' or dbt model' if published_elsewhere else ''}; known datasets: {', '.join(sorted(published))}"
                    )
        return errors

    def levels(self) -> list[list[str]]:
        """Execution levels: each level's pipelines depend only on earlier levels."""
        return [list(level) for level in self._levels]
