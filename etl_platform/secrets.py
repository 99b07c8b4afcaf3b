"""Secrets by reference: `env:NAME`, `file:/path`, `vault:mount/path#key`, resolved when a run needs them.

A spec or the environment names where a secret is, never the secret: the reference is what the
code location's snapshot, the UI and a pipeline file hold. `resolve` reads the value at run time
(inside a resource or a step, never at code-location load), returns it as a pydantic `SecretStr`,
whose repr and str show nothing, and registers it with the one redaction function
(`errors.redact`), so it is scrubbed from every message, log line and metadata value afterwards
(docs/security.md, "Secrets").

- `env:NAME`: the variable NAME of the settings' environment snapshot (`Settings.secrets`).
- `file:/path`: the file's content, one trailing newline dropped (Kubernetes and Docker secrets).
- `vault:mount/path#key`: the key of a HashiCorp Vault KV v2 secret, through `hvac`, at
  VAULT_ADDR with VAULT_TOKEN (both from the environment snapshot).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from etl_platform.errors import SpecError, register_secret

REFERENCE = re.compile(r"^(env|file|vault):(.+)$")
# A reference written inside a larger text (a URL): ${env:NAME}, ${file:/path}, ${vault:path#key}.
EMBEDDED = re.compile(r"\$\{((?:env|file|vault):[^}]+)\}")


class SecretUnavailable(SpecError):
    """A reference that names no value: the message names the reference, never a value."""


def is_reference(text: str) -> bool:
    return bool(REFERENCE.match(text))


def resolve(reference: str, environment: Mapping[str, str]) -> SecretStr:
    """The value `reference` names, as a SecretStr, registered for redaction.

    `environment` is the settings' snapshot of the environment (`Settings.secrets`): `env:` reads
    it, and `vault:` finds VAULT_ADDR and VAULT_TOKEN in it.
    """
    match = REFERENCE.match(reference)
    if not match:
        raise SecretUnavailable(f"{reference!r} is no secret reference; write env:NAME, file:/path or vault:mount/path#key")
    kind, where = match.groups()
    if kind == "env":
        if not environment.get(where):
            raise SecretUnavailable(f"secret reference env:{where}: the variable {where} is not set; export it before running")
        value = environment[where]
    elif kind == "file":
        value = _read_file(where)
    else:
        value = _read_vault(where, environment)
    register_secret(value)
    return SecretStr(value)


def expand_references(text: str, environment: Mapping[str, str]) -> str:
    """`text` with each `${env:...}`, `${file:...}` or `${vault:...}` replaced by its value (a URL's password)."""
    return EMBEDDED.sub(lambda m: resolve(m[1], environment).get_secret_value(), text)


def _read_file(path: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SecretUnavailable(
            f"secret reference file:{path}: cannot read the file ({exc.strerror}); mount the secret there"
        ) from None
    return text.removesuffix("\n")


def _read_vault(where: str, environment: Mapping[str, str]) -> str:
    """KV v2: `mount/path#key` is the key `key` of the latest version of the secret `path` on engine `mount`."""
    import hvac  # imported here: only a deployment with Vault references pays for it
    import requests

    path, _, key = where.partition("#")
    mount, _, name = path.partition("/")
    if not (mount and name and key):
        raise SecretUnavailable(
            f"secret reference vault:{where}: write it as vault:mount/path#key, e.g. vault:secret/etl/db#password"
        )
    if not environment.get("VAULT_ADDR"):
        raise SecretUnavailable(f"secret reference vault:{where}: VAULT_ADDR is not set; export the Vault server's address")
    client = hvac.Client(url=environment["VAULT_ADDR"], token=environment.get("VAULT_TOKEN"), timeout=10)
    try:
        response = client.secrets.kv.v2.read_secret_version(path=name, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        raise SecretUnavailable(f"secret reference vault:{where}: Vault has no secret {name} on {mount}/") from None
    except hvac.exceptions.Forbidden:
        raise SecretUnavailable(f"secret reference vault:{where}: VAULT_TOKEN may not read {mount}/{name}") from None
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SecretUnavailable(
            f"secret reference vault:{where}: Vault at {environment['VAULT_ADDR']} failed: {type(exc).__name__}"
        ) from None
    data = response["data"]["data"]
    if key not in data:
        raise SecretUnavailable(
            f"secret reference vault:{where}: the secret has no key {key!r} (it has {', '.join(sorted(data))})"
        )
    return str(data[key])
