"""The engine contract in pyproject.toml names every engine module, so none escapes it.

import-linter's forbidden contract (run by `make test` as `lint-imports`) checks the modules it
lists; a new subpackage of etl_platform would be unchecked until someone lists it. This test
makes adding it a decision: into the engine list, or into a layer above the engine.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABOVE_THE_ENGINE = {"etl_platform.cli", "etl_platform.definitions", "etl_platform.instance"}


def top_level_modules(package: Path) -> set[str]:
    """The direct submodules and subpackages of `package`, as dotted names."""
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    modules |= {path.parent.name for path in package.glob("*/__init__.py")}
    return {f"{package.name}.{name}" for name in modules}


def test_every_module_of_etl_platform_is_in_the_engine_contract_or_above_the_engine() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    engine = set(next(c for c in contracts if c["id"] == "engine")["source_modules"])
    modules = top_level_modules(ROOT / "etl_platform")
    assert not engine & ABOVE_THE_ENGINE
    assert modules - ABOVE_THE_ENGINE - engine == set(), "add these to the engine contract or to a layer above it"
    assert engine - modules == set(), "the engine contract names modules that do not exist"
