"""`tenant:` in a pipeline: which tenant each published row belongs to, and how tenants are kept apart."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from etl_platform.spec.base import ColumnName, Identifier, Strict

_TENANT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # an Identifier


class TenantSpec(Strict):
    """A fixed tenant (`value`) or a source column holding it (`column`), written to every published row
    as `name`; `isolation: schema` publishes into one schema per tenant (created on first load);
    `isolation: rls` keeps every tenant in one PostgreSQL table behind row-level security, published
    as the tenant's `role` (docs/security.md, "Row-level security")."""

    value: Identifier | None = None
    column: ColumnName | None = None
    name: ColumnName = Field("_tenant_id", description="the tenant column of published rows")
    isolation: Literal["schema", "rls"] | None = Field(
        None, description="schema: one schema per tenant, `<schema>_<tenant>`; rls: one table, row-level security"
    )
    role: Identifier | None = Field(None, description="rls: the role a load publishes as (default etl_writer_<value>)")
    partition_key: bool = Field(False, description="the tenant is each load's static partition key (`partitions.static`)")

    @model_validator(mode="after")
    def _one_source(self) -> TenantSpec:
        fixed = self.value is not None or self.partition_key
        if self.value is not None and self.partition_key:
            raise ValueError("give the tenant as a fixed `value` or as the `partition_key`, not both")
        if self.isolation == "rls":
            if not fixed:
                raise ValueError(
                    "isolation: rls needs the load's tenant: a `value` or `partition_key: true` "
                    "(a `column` only names where rows hold theirs)"
                )
        elif fixed == (self.column is not None):
            raise ValueError(
                "give the tenant as a fixed `value` or as the source `column` that holds it (or `partition_key: true`)"
            )
        if self.isolation == "schema" and self.value is None:
            raise ValueError("isolation: schema needs a fixed tenant `value`: one load publishes into one tenant's schema")
        if self.role is not None and self.isolation != "rls":
            raise ValueError("`role` is the role an `isolation: rls` load publishes as: set isolation: rls, or drop it")
        return self

    @property
    def publishing_role(self) -> str:
        """The role an rls load's INSERT runs as, so the policy's WITH CHECK binds it (never a superuser's)."""
        return self.role or f"etl_writer_{self.value}"


def check_tenant_keys(keys: list[str]) -> None:
    """Partition keys that name tenants become tenant values and role names: lower-case identifiers."""
    bad = [k for k in keys if not _TENANT.match(k)]
    if bad:
        raise ValueError(f"partition keys {bad} cannot name tenants: use lower-case letters, digits and _ (a letter first)")


def tenant_spec(tenant: str | TenantSpec | None) -> TenantSpec | None:
    """`tenant: acme` is short for `tenant: {value: acme}`."""
    return TenantSpec(value=tenant) if isinstance(tenant, str) else tenant


def isolated_dataset(document: Any) -> Any:
    """A pipeline document with `isolation: schema` publishes to `<schema>_<tenant>.<table>` (before validation)."""
    if not isinstance(document, dict):
        return document
    tenant, destination = document.get("tenant"), document.get("destination")
    if not (isinstance(tenant, dict) and tenant.get("isolation") == "schema" and isinstance(tenant.get("value"), str)):
        return document
    if not (isinstance(destination, dict) and isinstance(destination.get("dataset"), str) and "." in destination["dataset"]):
        return document
    schema, _, table = destination["dataset"].rpartition(".")
    return {**document, "destination": {**destination, "dataset": f"{schema}_{tenant['value']}.{table}"}}
