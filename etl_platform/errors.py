"""The platform's own exception types.

Every expected failure is one of these, with a message that names where the problem is (file,
line or row, field) and what would fix it, so a user never has to read a pandas or psycopg
traceback to understand a problem in their own data or configuration.
"""

from __future__ import annotations

import logging
import re
import threading


class EtlError(Exception):
    """Base class: an expected failure with a message written for the user.

    `transient` says whether the same work may succeed later unchanged (a server restarting, a
    lock held by another run): only those are retried. Every other EtlError is about the data or
    the configuration, fails at once, and is the user's to fix (docs/how-a-run-works.md, "Failures").
    """

    transient: bool = False

    def __init__(self, message: str = "", *, transient: bool | None = None):
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class SpecError(EtlError):
    """A pipeline file or Python-declared pipeline is invalid; raised at load time."""


class SourceError(EtlError):
    """A source cannot be read: missing files, malformed content, unreachable database."""


class TransformError(EtlError):
    """A transform cannot be applied to the data it received (for example a missing column)."""


class DestinationError(EtlError):
    """The data cannot be published as configured (schema conflict, missing primary key)."""


class WarehouseUnavailable(EtlError):
    """The warehouse cannot be reached, or refuses the configuration (URL, credentials, database).

    `transient`: the server may come back by itself (a timeout, starting up, too many clients, a
    lock). A refused connection (nothing listens at the host and port) is not: a wrong port looks
    exactly like a stopped server, and retrying a wrong URL for a minute hides the message the user
    needs (docs/how-a-run-works.md, "Failures").
    """


def one_line(error: BaseException) -> str:
    """A driver's (often multi-line) error message as one line, for messages built around it."""
    return " ".join(str(error).split())


def masked_url(url: str) -> str:
    """`url` with the password of its user part shown as `***`: the one form any message shows a URL in.

    Text, not a parsed URL, so a URL that does not parse (no scheme, an unknown one) is masked
    too. Everything between the user's `:` and the URL's last `@` counts as the password, so a
    password holding `@` or `/` is hidden whole (erring towards hiding too much, never too little).
    """
    scheme, separator, rest = url.rpartition("://") if "://" in url else ("", "", url)
    if "@" not in rest:
        return url
    user_part, _, host_part = rest.rpartition("@")
    user, colon, _password = user_part.partition(":")
    return f"{scheme}{separator}{user}{colon}{'***' if colon else ''}@{host_part}"


# Secret values this process resolved (etl_platform.secrets registers each): `redact` scrubs them.
_KNOWN_SECRETS: set[str] = set()
_KNOWN_LOCK = threading.Lock()
# A URL with a user part: scheme://user:password@host...; the password is masked by `masked_url`.
_URL_WITH_USER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*@[^\s'\"<>]*")
REDACTED = "***"


def register_secret(value: str) -> None:
    """Remember a resolved secret, so `redact` scrubs it from any text from now on (values under 4
    characters are not registered: scrubbing them would garble ordinary text and hide little)."""
    if len(value) >= 4:
        with _KNOWN_LOCK:
            _KNOWN_SECRETS.add(value)


def redact(text: str) -> str:
    """The one redaction: every URL's password masked (as `masked_url`) and every known secret value
    replaced by `***`. Logging (the etl_platform loggers' filter), error messages (a step's failure)
    and metadata (a materialization's values) pass through it (docs/security.md, "Redaction")."""
    text = _URL_WITH_USER.sub(lambda m: masked_url(m[0]), text)
    with _KNOWN_LOCK:
        known = sorted(_KNOWN_SECRETS, key=len, reverse=True)  # a secret holding another is replaced whole
    for value in known:
        text = text.replace(value, REDACTED)
    return text


def install_log_redaction() -> None:
    """Pass every log record of this process through `redact` (once; later calls do nothing).

    A record factory rather than a handler's filter: it covers the platform's loggers and Dagster's
    alike, whichever handlers they reach (the console, the run's event log).
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
