"""Schema inference: statistical types, semantic types with a confidence, keys and foreign keys.

A column's type is the narrowest that at least 95% of its non-null sample values parse as; its
semantic type (email, phone, URL, IP, postal code, date, currency amount, credit-card-like and
national-id-like numbers) the pattern most of its values match, with the share as confidence.
A candidate primary key is a column with no nulls and no repeats in the sample; a foreign-key
candidate is a column whose values are (95%+) contained in another file's candidate key.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

TYPE_SHARE = 0.95
SEMANTIC_SHARE = 0.8
FOREIGN_KEY_SHARE = 0.95
FOREIGN_KEY_MIN_DISTINCT = 10  # fewer distinct values (a quantity of 1 to 5) fit inside any id column


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return digits.isdigit() and 13 <= len(digits) <= 19 and _luhn(digits)


def _date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _timestamp(text: str) -> bool:
    try:
        datetime.datetime.fromisoformat(text)
        return not _date(text)
    except ValueError:
        return False


def _number(kind: type) -> Callable[[str], bool]:
    def parses(text: str) -> bool:
        try:
            kind(text)
            return True
        except ValueError:
            return False

    return parses


# Checked in this order; a value counts for the first semantic type it matches.
SEMANTIC: dict[str, Callable[[str], bool]] = {
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$").match,
    "url": re.compile(r"^https?://[^\s/$.?#].[^\s]*$", re.I).match,
    "ip_address": re.compile(
        r"^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$|^[0-9a-f:]{2,39}:[0-9a-f]{1,4}$", re.I
    ).match,
    "credit_card": _card,
    "national_id": re.compile(r"^\d{3}-\d{2}-\d{4}$|^[A-Z]{2}\d{6}[A-D]$").match,
    "currency_amount": re.compile(
        r"^(?:[$€£¥]\s?-?\d[\d,]*(\.\d{1,2})?|-?\d[\d,]*(\.\d{1,2})?\s?(?:EUR|USD|GBP|CHF|[$€£]))$"
    ).match,
    "date": _date,
    "postal_code": re.compile(r"^\d{5}(-\d{4})?$|^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$", re.I).match,
    "phone": re.compile(r"^\+?[\d\s().-]{7,20}$").match,
}
PII = {"email": "sha256", "phone": "redact", "credit_card": "redact", "national_id": "redact", "ip_address": "sha256"}
TYPES: list[tuple[str, Callable[[str], bool]]] = [
    ("bool", lambda t: t.lower() in ("true", "false")),
    ("int", _number(int)),
    ("float", _number(float)),
    ("date", _date),
    ("timestamp", _timestamp),
]


@dataclass
class ColumnProfile:
    name: str
    type: str
    type_confidence: float
    semantic: str | None
    semantic_confidence: float
    nulls: int
    distinct: int
    values: set[str] = field(repr=False)

    @property
    def pii(self) -> str | None:
        return PII.get(self.semantic or "")


@dataclass
class FileProfile:
    name: str
    rows: int
    columns: list[ColumnProfile]
    key_candidates: list[str]
    foreign_keys: dict[str, str] = field(default_factory=dict)  # column -> "other_file.column"


def _share(values: list[str], test: Callable[[str], bool]) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def profile_column(name: str, column: pa.ChunkedArray) -> ColumnProfile:
    texts = [None if v is None else str(v).strip() for v in column.to_pylist()]
    values = [t for t in texts if t]
    kind, type_share = "text", 1.0
    leading_zero = any(len(v) > 1 and v[0] == "0" and v[1].isdigit() for v in values)
    if values and not leading_zero:  # 01234 is a code, not the number 1234
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            kind = "int" if pa.types.is_integer(column.type) else "float" if pa.types.is_floating(column.type) else "bool"
        else:
            for candidate, test in TYPES:
                share = _share(values, test)
                if share >= TYPE_SHARE:
                    kind, type_share = candidate, share
                    break
    semantic, semantic_share = None, 0.0
    if values and kind in ("text", "date", "int"):
        counts = {name_: 0 for name_ in SEMANTIC}
        for value in values:
            for kind_name, test in SEMANTIC.items():
                if test(value):
                    counts[kind_name] += 1
                    break
        best = max(counts, key=counts.get)
        if counts[best] / len(values) >= SEMANTIC_SHARE and not (
            kind == "int" and best not in ("postal_code", "phone", "credit_card")
        ):
            semantic, semantic_share = best, counts[best] / len(values)
    if semantic in ("postal_code", "phone", "credit_card") and kind in ("int", "float"):
        kind = "text"  # codes keep their digits as written
    return ColumnProfile(
        name,
        kind,
        round(type_share, 3),
        semantic,
        round(semantic_share, 3),
        len(texts) - len(values),
        len(set(values)),
        set(values),
    )


def profile_table(name: str, table: pa.Table) -> FileProfile:
    columns = [profile_column(c, table[c]) for c in table.column_names]
    keys = [c.name for c in columns if c.nulls == 0 and c.distinct == len(table) and len(table) > 1 and c.type in ("int", "text")]
    return FileProfile(name, len(table), columns, keys)


def link_foreign_keys(profiles: list[FileProfile]) -> None:
    """Mark columns whose values lie (95%+) within another file's candidate key."""
    for profile in profiles:
        for column in profile.columns:
            if column.name in profile.key_candidates or column.distinct < FOREIGN_KEY_MIN_DISTINCT:
                continue
            for other in profiles:
                if other is profile:
                    continue
                for key in other.key_candidates:
                    key_values = next(c.values for c in other.columns if c.name == key)
                    if len(column.values & key_values) / len(column.values) >= FOREIGN_KEY_SHARE:
                        profile.foreign_keys[column.name] = f"{other.name}.{key}"
