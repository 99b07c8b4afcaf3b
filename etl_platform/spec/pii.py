"""`pii:` in a pipeline: find PII-looking columns in the rows about to be published, and mask, redact or refuse them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from etl_platform.spec.base import ColumnName, Strict


class PiiSpec(Strict):
    """What to do with columns whose values look like PII (email, phone, card, national id, IP address)
    after the transforms: `mask` them (sha256 with the salt for emails and IP addresses, redacted
    otherwise), `redact` them, or `fail` the load naming them, so nothing unmasked is published."""

    detect: bool = Field(True, description="look at the first rows of each load for PII-looking columns")
    action: Literal["mask", "redact", "fail"] = "fail"
    salt_secret: str = Field("ETL_PII_SALT", description="the salt of `mask`: a variable name or a secret reference")
    ignore: list[ColumnName] = Field(default_factory=list, description="columns known not to be PII")
