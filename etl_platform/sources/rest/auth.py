"""Credentials on each request: bearer, basic, API key (header or query), OAuth2 client credentials.

The spec holds `${VAR}` references only; values come from the settings' secrets when the source
opens. An OAuth2 token is fetched when first needed, again shortly before it expires, and again
once after a 401 (a token revoked or expired early).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

from etl_platform.errors import SourceError, register_secret
from etl_platform.sources.sql import expand_env
from etl_platform.spec.rest import ApiKeyAuth, Auth, BasicAuth, BearerAuth, OAuth2ClientCredentials


@dataclass
class Credentials:
    """What one request carries: headers and query parameters, and the secret values to redact."""

    spec: Auth
    secrets: Mapping[str, str]
    session: requests.Session
    timeout: float
    _token: str | None = None
    _expires_at: float = 0.0
    secret_values: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("token", "password", "key", "client_secret"):
            reference = getattr(self.spec, name, None)
            if reference:
                self.secret_values.append(expand_env(reference, self.secrets))

    def apply(self, headers: dict[str, str], params: dict) -> None:
        spec = self.spec
        if isinstance(spec, BearerAuth):
            headers["Authorization"] = f"Bearer {self.secret_values[0]}"
        elif isinstance(spec, BasicAuth):
            pair = f"{spec.username}:{self.secret_values[0]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif isinstance(spec, ApiKeyAuth):
            (headers if spec.location == "header" else params)[spec.name] = self.secret_values[0]
        elif isinstance(spec, OAuth2ClientCredentials):
            headers["Authorization"] = f"Bearer {self._oauth_token()}"

    def refreshable(self) -> bool:
        """After a 401: can a new token help? (once per token)"""
        if not isinstance(self.spec, OAuth2ClientCredentials) or self._token is None:
            return False
        self._token = None
        return True

    def _oauth_token(self) -> str:
        spec: OAuth2ClientCredentials = self.spec
        if self._token is not None and time.monotonic() < self._expires_at - spec.refresh_before_seconds:
            return self._token
        data = {"grant_type": "client_credentials", "client_id": spec.client_id, "client_secret": self.secret_values[0]}
        if spec.scope:
            data["scope"] = spec.scope
        try:
            response = self.session.post(spec.token_url, data=data, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SourceError(f"OAuth2 token from {spec.token_url}: {type(exc).__name__}", transient=True) from None
        if response.status_code != 200:
            raise SourceError(
                f"OAuth2 token from {spec.token_url}: HTTP {response.status_code}; check client_id and client_secret"
            )
        payload = response.json()
        token = payload.get("access_token")
        if not token:
            raise SourceError(f"OAuth2 token from {spec.token_url}: the answer holds no access_token")
        self._token = token
        self._expires_at = time.monotonic() + float(payload.get("expires_in", 3600))
        self.secret_values.append(token)
        register_secret(token)  # errors.redact scrubs it from logs and step failures too
        return token
