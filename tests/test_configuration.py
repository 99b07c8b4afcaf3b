"""One configuration object: the environment is read in etl_platform/settings.py only, and passed down."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from etl_platform.breaker import BreakerBoard, SystemUnavailable
from etl_platform.dbt_layer import profiles_dir
from etl_platform.errors import SpecError
from etl_platform.settings import BreakerSettings, Secrets, Settings
from tests.conftest import REPO

SCANNED = ("etl_platform", "assets", "resources", "sensors")
ENVIRONMENT_NAMES = {"environ", "getenv", "putenv", "unsetenv", "environb"}


def environment_uses(path: Path) -> list[str]:
    """Places in a module that read or write the process environment (os.environ, os.getenv, ...)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"{path.relative_to(REPO)}:{node.lineno}: from os import {a.name}"
                for a in node.names
                if a.name in ENVIRONMENT_NAMES
            ]
    return found


def test_only_the_settings_module_touches_the_process_environment() -> None:
    modules = [path for folder in SCANNED for path in (REPO / folder).rglob("*.py")]
    assert REPO / "etl_platform" / "settings.py" in modules
    assert environment_uses(REPO / "etl_platform" / "settings.py")  # the scan does see a use
    uses = [use for path in modules if path != REPO / "etl_platform" / "settings.py" for use in environment_uses(path)]
    assert uses == []


def test_settings_carry_breakers_and_secrets_whose_repr_shows_no_value() -> None:
    settings = Settings.from_env(
        {"ETL_BREAKER_FAILURES": "2", "ETL_BREAKER_COOLDOWN_SECONDS": "0.5", "ETL_PII_SALT": "very-secret-salt"}
    )
    assert settings.breakers == BreakerSettings(failures=2, cooldown_seconds=0.5)
    assert settings.secrets["ETL_PII_SALT"] == "very-secret-salt"
    assert "very-secret-salt" not in repr(settings) and "very-secret-salt" not in repr(settings.secrets)
    with pytest.raises(TypeError):
        settings.secrets["ETL_PII_SALT"] = "changed"  # type: ignore[index]
    child = settings.subprocess_environment(EXTRA="1")
    assert child["ETL_PII_SALT"] == "very-secret-salt" and child["DAGSTER_HOME"] == str(settings.dagster_home)
    assert Settings.from_env({}).breakers == BreakerSettings()
    assert isinstance(Settings.from_env({}).secrets, Secrets) and not Settings.from_env({}).secrets


def test_breaker_boards_are_objects_of_their_own() -> None:
    """Two boards share nothing: a breaker opened on one leaves the other's closed (no module-level registry)."""
    down, other = BreakerBoard(BreakerSettings(failures=1)), BreakerBoard(BreakerSettings(failures=1))

    def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        down.guarded("db", fail, lambda exc: True)
    with pytest.raises(SystemUnavailable, match="db failed 1 times in a row"):
        down.guarded("db", fail, lambda exc: True)
    assert other.guarded("db", lambda: "up", lambda exc: True) == "up"


def test_the_dbt_profile_lives_as_long_as_one_invocation(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop_profile\n")
    before = dict(os.environ)
    with profiles_dir(project, "postgresql://etl:s3cret@db.internal:6432/warehouse?sslmode=require") as folder:
        profile = yaml.safe_load((folder / "profiles.yml").read_text())
        assert profile["shop_profile"]["target"] == "postgres"
        output = profile["shop_profile"]["outputs"]["postgres"]
        expected = {
            "host": "db.internal",
            "port": 6432,
            "user": "etl",
            "password": "s3cret",
            "dbname": "warehouse",
            "sslmode": "require",
        }
        assert {key: output[key] for key in expected} == expected
        assert folder.stat().st_mode & 0o077 == 0  # the password is readable by this user only
        assert dict(os.environ) == before  # passed as a file, not through the process environment
    assert not folder.exists()


def test_importing_the_definitions_reads_no_pipeline_file(tmp_path: Path) -> None:
    """`defs` is built when Dagster loads it: the import succeeds, loading names the broken file and line."""
    (tmp_path / "broken.yaml").write_text("id: broken\nsource: [unclosed\n")
    probe = (
        "import etl_platform.definitions as d\n"
        "print('imported')\n"
        "try:\n"
        "    d.defs()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "ETL_PIPELINES_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "imported"
    assert lines[1].startswith("SpecError") and "broken.yaml:3: invalid YAML" in lines[1], done.stdout


def test_a_postgres_scheme_is_read_as_postgresql() -> None:
    settings = Settings.from_env({"ETL_WAREHOUSE_URL": "postgres://user:pw@db.example:5432/warehouse"})
    assert settings.warehouse_url == "postgresql://user:pw@db.example:5432/warehouse"
    assert Settings.from_env({"ETL_WAREHOUSE_URL": "postgresql://u@h/d"}).warehouse_url == "postgresql://u@h/d"


def test_a_breaker_setting_that_is_not_a_positive_number_names_the_variable() -> None:
    with pytest.raises(SpecError, match=r"ETL_BREAKER_FAILURES='five' is not a positive int; unset it for the default \(5\)"):
        Settings.from_env({"ETL_BREAKER_FAILURES": "five"})
    with pytest.raises(SpecError, match=r"ETL_BREAKER_COOLDOWN_SECONDS='-1' is not a positive float"):
        Settings.from_env({"ETL_BREAKER_COOLDOWN_SECONDS": "-1"})
    assert Settings.from_env({"ETL_BREAKER_COOLDOWN_SECONDS": "2.5"}).breakers.cooldown_seconds == 2.5
