"""Dataset locks and staging claims of a MariaDB/MySQL warehouse as GET_LOCK named locks (warehouse.locks).

A named lock belongs to the session, not to the transaction, and the server releases it when the
session ends, so a killed run never leaves one behind. The dataset lock is released by the
warehouse at COMMIT or ROLLBACK (`transaction_ended`); a claim by `release` or the session's end.
Names carry the warehouse's schema prefix, so warehouses sharing one server never wait on each other.
"""

from __future__ import annotations

import logging

import pymysql

from etl_platform.warehouse.locks import WAITING, lock_key

log = logging.getLogger(__name__)
# How long one GET_LOCK waits before it is asked again (the server's limit is a timeout per call).
_WAIT_SECONDS = 3600


class NamedLocks:
    def __init__(self, connection: pymysql.Connection, namespace: str):
        self.connection = connection
        self.namespace = namespace
        self._transaction: list[str] = []
        self._claims: set[str] = set()

    def _name(self, kind: str, name: str) -> str:
        return f"etl:{lock_key(kind, self.namespace + name):x}"  # GET_LOCK names are at most 64 characters

    def _ask(self, sql: str, name: str) -> object:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, (name,))
            return cursor.fetchone()[0]

    def _take(self, name: str, what: str) -> None:
        if self._ask("SELECT GET_LOCK(%s, 0)", name) != 1:
            log.info(WAITING, what)
            while self._ask(f"SELECT GET_LOCK(%s, {_WAIT_SECONDS})", name) != 1:
                log.info(WAITING, what)

    def lock_dataset(self, dataset: str) -> None:
        name = self._name("dataset", dataset)
        if name not in self._transaction:
            self._take(name, dataset)
            self._transaction.append(name)

    def transaction_ended(self) -> None:
        while self._transaction:
            self._ask("SELECT RELEASE_LOCK(%s)", self._transaction.pop())

    def claim(self, staging: str) -> None:
        self._take(self._name("staging", staging), staging)
        self._claims.add(staging)

    def release(self, staging: str) -> None:
        if staging in self._claims:
            self._claims.discard(staging)
            self._ask("SELECT RELEASE_LOCK(%s)", self._name("staging", staging))

    def claimed(self, staging: str) -> bool:
        """Whether a live session (this one or another) holds the claim; asking takes nothing."""
        return staging in self._claims or self._ask("SELECT IS_USED_LOCK(%s)", self._name("staging", staging)) is not None

    def close(self) -> None:
        """Closing the session releases its named locks."""
