"""The platform's own exception types.

Every expected failure is one of these, with a message that names where the problem is (file,
line or row, field) and what would fix it, so a user never has to read a pandas or psycopg
traceback to understand a problem in their own data or configuration.
"""

from __future__ import annotations


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
    lock). `endpoint` is set when nothing answered at the host and port (connection refused): a
    wrong port and a stopped server look alike, so whoever knows whether the endpoint ever answered
    (the Dagster layer: the asset published before) decides whether to retry.
    """

    def __init__(self, message: str, *, transient: bool = False, endpoint: str | None = None):
        super().__init__(message, transient=transient)
        self.endpoint = endpoint


def one_line(error: BaseException) -> str:
    """A driver's (often multi-line) error message as one line, for messages built around it."""
    return " ".join(str(error).split())
