"""Secrets by reference (env:, file:, vault: through hvac against a real local KV v2 HTTP server) and
the one redaction function."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from etl_platform.errors import masked_url, redact
from etl_platform.secrets import SecretUnavailable, expand_references, resolve
from tests.vault_server import kv2_server


def secret_value() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


def test_env_and_file_references_resolve_to_secret_strings(tmp_path: Path) -> None:
    value, mounted = secret_value(), secret_value()
    (tmp_path / "pg").write_text(mounted + "\n")
    resolved = resolve("env:DB_PASS", {"DB_PASS": value})
    assert resolved.get_secret_value() == value and value not in repr(resolved) and value not in str(resolved)
    assert resolve(f"file:{tmp_path / 'pg'}", {}).get_secret_value() == mounted
    url = expand_references(f"postgresql://loader:${{file:{tmp_path / 'pg'}}}@127.0.0.1/db", {})
    assert url == f"postgresql://loader:{mounted}@127.0.0.1/db"
    with pytest.raises(SecretUnavailable, match="env:MISSING: the variable MISSING is not set"):
        resolve("env:MISSING", {})
    with pytest.raises(SecretUnavailable, match="cannot read the file"):
        resolve(f"file:{tmp_path / 'absent'}", {})


def test_vault_kv2_reference_through_hvac() -> None:
    value, token = secret_value(), uuid.uuid4().hex
    with kv2_server({"secret/etl/db": {"password": value}}, token) as address:
        environment = {"VAULT_ADDR": address, "VAULT_TOKEN": token}
        assert resolve("vault:secret/etl/db#password", environment).get_secret_value() == value
        with pytest.raises(SecretUnavailable, match="has no key 'user'"):
            resolve("vault:secret/etl/db#user", environment)
        with pytest.raises(SecretUnavailable, match="Vault has no secret other on secret/"):
            resolve("vault:secret/other#password", environment)
        with pytest.raises(SecretUnavailable, match="VAULT_TOKEN may not read"):
            resolve("vault:secret/etl/db#password", {**environment, "VAULT_TOKEN": "wrong"})
    with pytest.raises(SecretUnavailable, match="VAULT_ADDR is not set"):
        resolve("vault:secret/etl/db#password", {})


def test_redact_masks_urls_like_masked_url_and_scrubs_known_values() -> None:
    value = secret_value()
    url = "postgresql://etl:p@ss/w0rd@db.example:5432/wh"
    assert redact(f"cannot connect to {url}: refused") == f"cannot connect to {masked_url(url)}: refused"
    assert masked_url(url) == "postgresql://etl:***@db.example:5432/wh"
    assert redact(f"the salt is {value}") == f"the salt is {value}"  # not known yet
    resolve("env:SALT", {"SALT": value})
    assert redact(f"the salt is {value}.") == "the salt is ***."
