"""Quality rules as a pipeline declares them, the volume check, the circuit breaker, and custom checks.

A rule reads like the seed roadmaps' example, `{field: age, rule: Range, args: [18, 120]}`;
options may also be named (`min`, `max`, `inclusive`, `values`, `pattern`, `max_age`, `sql`).
Row-level rules judge each row (failing rows are quarantined when the severity is `error`);
dataset-level rules judge the load as a whole before it is published. How rules are evaluated
is the quality package's business (`etl_platform/quality/validator.py` and `audit.py`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from etl_platform.errors import SpecError
from etl_platform.spec.base import Strict, parse_duration

if TYPE_CHECKING:
    import polars as pl

ROW_RULES = ("NotNull", "Range", "Regex", "Email", "IsIn", "Length", "Type")
DATASET_RULES = ("Unique", "RowCount", "Freshness", "CustomQuery")
RULE_TYPES = ("int", "float", "bool", "date", "timestamp")  # what rule Type can check; validator.py maps each
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

CustomCheck = Callable[["pl.Expr"], "pl.Expr"]  # a column expression -> "row is valid" booleans


class CustomChecks:
    """Custom row checks by name, usable as `{field: x, rule: <name>}` in pipeline files.

    An object, not a module global, so that each pipeline registry (and each test) sees only the
    checks declared for it: a Python pipeline file declares `checks = CustomChecks()` and decorates
    functions with `@checks.register("european")`; the registry merges every such object it finds
    before validating the YAML files, which name checks through the validation context (see Rule).
    Declared here, not in the quality package, because a rule naming one is resolved when the spec loads.
    """

    def __init__(self) -> None:
        self._checks: dict[str, CustomCheck] = {}

    def register(self, name: str) -> Callable[[CustomCheck], CustomCheck]:
        """Decorate a function that receives the column as a polars expression and returns a boolean
        expression that is true for valid values, e.g. `lambda column: column.str.starts_with("DE")`."""

        def register(function: CustomCheck) -> CustomCheck:
            self._add(name, function)
            return function

        return register

    def _add(self, name: str, function: CustomCheck) -> None:
        """Register `function` as `name`; one name may not mean two different functions."""
        if name in ROW_RULES or name in DATASET_RULES:
            raise SpecError(f"custom check {name!r} would hide the built-in rule of that name; choose another name")
        known = self._checks.get(name)
        if known is not None and known is not function:
            raise SpecError(
                f"custom check {name!r} is registered twice, by {_qualified(known)} and {_qualified(function)}; "
                "rename one of them"
            )
        self._checks[name] = function

    def merge(self, other: CustomChecks) -> None:
        """Add every check of `other` (a pipelines module's checks into the registry's)."""
        for name, function in other._checks.items():
            self._add(name, function)

    def __contains__(self, name: object) -> bool:
        return name in self._checks

    def __getitem__(self, name: str) -> CustomCheck:
        return self._checks[name]

    def names(self) -> list[str]:
        return sorted(self._checks)


def _qualified(function: CustomCheck) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


class Rule(Strict):
    """One quality rule; `args` are positional options, named options win over them.

    A rule naming a custom check is validated with the registry's `CustomChecks` in pydantic's
    validation context (`model_validate(document, context={"custom_checks": checks})`) and keeps
    the resolved function, so the engine evaluates it without any registry at run time.
    """

    rule: str
    field: str | None = None
    fields: list[str] | None = None
    args: list[Any] = Field(default_factory=list)
    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    severity: Literal["error", "warn"] = "error"
    min: float | int | None = None
    max: float | int | None = None
    inclusive: bool = True
    values: list[Any] | None = None
    pattern: str | None = None
    type: str | None = None
    max_age: str | None = None
    sql: str | None = None
    _custom_check: CustomCheck | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Rule:
        known = (*ROW_RULES, *DATASET_RULES)
        if self.rule not in known:
            custom: CustomChecks = (info.context or {}).get("custom_checks") or CustomChecks()
            if self.rule not in custom:
                registered = f"custom: {', '.join(custom.names())}" if custom.names() else "no custom checks registered"
                raise ValueError(
                    f"unknown rule {self.rule!r}; built in: {', '.join(known)}; {registered} "
                    "(a Python file in the pipelines folder declares them: `@checks.register(name)` on a CustomChecks)"
                )
            self._custom_check = custom[self.rule]
        needs_field = self.rule not in ("RowCount", "CustomQuery", "Unique")
        if needs_field and not self.field:
            raise ValueError(f"rule {self.rule} needs `field: <column>`")
        if self.rule == "Unique" and not (self.field or self.fields):
            raise ValueError("rule Unique needs `field: <column>` or `fields: [<columns>]`")
        checks = {
            "Range": lambda: self.bounds() != (None, None) or "Range needs a minimum, a maximum or both",
            "RowCount": lambda: self.bounds() != (None, None) or "RowCount needs `min`, `max` or both",
            "IsIn": lambda: bool(self.allowed_values()) or "IsIn needs the allowed values: `args: [a, b]`",
            "Length": lambda: self.bounds() != (None, None) or "Length needs a minimum, a maximum or both",
            "Regex": lambda: self._valid_pattern(),
            "Type": lambda: self.type_name() in RULE_TYPES or f"Type needs one of {', '.join(RULE_TYPES)}",
            "Freshness": lambda: bool(self.age()) or "Freshness needs `max_age` (e.g. 2d)",
            "CustomQuery": lambda: bool(self.sql) or "CustomQuery needs `sql:` (or `args: [<sql>]`) returning failing rows",
        }
        outcome = checks.get(self.rule, lambda: True)()
        if outcome is not True:
            raise ValueError(outcome)
        return self

    def _valid_pattern(self) -> bool | str:
        pattern = self.pattern or (self.args[0] if self.args else None)
        if not pattern:
            return "Regex needs a pattern: `args: ['^[A-Z]{3}$']`"
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"Regex pattern {pattern!r} is invalid: {exc}"
        return True

    @property
    def check_name(self) -> str:
        """The asset check's name: the rule's own name, or derived from rule and columns."""
        if self.name:
            return self.name
        columns = self.columns()
        return "_".join([re.sub(r"(?<!^)(?=[A-Z])", "_", self.rule).lower(), *columns])[:63]

    @property
    def is_row_rule(self) -> bool:
        return self.rule in ROW_RULES or self._custom_check is not None

    @property
    def custom_check(self) -> CustomCheck:
        """The custom check this rule names, resolved when the spec loaded."""
        if self._custom_check is None:
            raise ValueError(f"rule {self.rule!r} is not a custom check")
        return self._custom_check

    def columns(self) -> list[str]:
        return list(self.fields) if self.fields else ([self.field] if self.field else [])

    def bounds(self) -> tuple[Any, Any]:
        low = self.min if self.min is not None else (self.args[0] if len(self.args) > 0 else None)
        high = self.max if self.max is not None else (self.args[1] if len(self.args) > 1 else None)
        return low, high

    def allowed_values(self) -> list[Any]:
        return list(self.values) if self.values is not None else list(self.args)

    def regex(self) -> str:
        return EMAIL if self.rule == "Email" else (self.pattern or self.args[0])

    def type_name(self) -> str | None:
        return self.type or (self.args[0] if self.args else None)

    def age(self) -> datetime.timedelta | None:
        text = self.max_age or (self.args[0] if self.args else None)
        return parse_duration(text) if text else None

    def query(self) -> str:
        return self.sql or self.args[0]

    def describe(self) -> str:
        """What the rule asks, in words, for messages and check descriptions."""
        low, high = self.bounds()
        span = (
            f"between {low} and {high}" if None not in (low, high) else f"at least {low}" if high is None else f"at most {high}"
        )
        texts: dict[str, Callable[[], str]] = {
            "NotNull": lambda: "is not null",
            "Range": lambda: f"is {span}" + ("" if self.inclusive else " (exclusive)"),
            "Regex": lambda: f"matches {self.regex()!r}",
            "Email": lambda: "is an email address",
            "IsIn": lambda: f"is one of {self.allowed_values()}",
            "Length": lambda: f"has length {span}",
            "Type": lambda: f"parses as {self.type_name()}",
            "Unique": lambda: "has no duplicates",
            "RowCount": lambda: f"row count is {span}",
            "Freshness": lambda: f"newest value is at most {self.max_age or self.args[0]} old",
            "CustomQuery": lambda: "custom query returns no rows",
        }
        text = texts.get(self.rule, lambda: f"passes {self.rule}")()
        return f"{', '.join(self.columns())} {text}".strip()


class CircuitBreaker(Strict):
    """Stop the publish when more than `error_threshold` percent of the rows read failed, or when every
    row that was not filtered failed (a wrong date format quarantines them all: that is no success)."""

    error_threshold: float = Field(ge=0, le=100, description="percent of rows read")
    min_record_count: int = Field(0, ge=0, description="below this many rows read, the threshold is not judged")
    fail_when_all_rows_fail: bool = Field(
        True, description="trip, however few rows were read, when rows were quarantined and none is left to publish"
    )


# Every pipeline has a breaker: a load that quarantines most of its rows fails, it does not report success.
DEFAULT_BREAKER = CircuitBreaker(error_threshold=50, min_record_count=100)


class VolumeCheck(Strict):
    """Compare a load's row count with the median of the dataset's recent loads."""

    min_ratio: float = Field(0.5, ge=0, description="fail below median x min_ratio (0 rows where 1,000 are usual fails)")
    max_ratio: float | None = Field(None, gt=0, description="fail above median x max_ratio (unset: no upper bound)")
    history: int = Field(10, ge=1, le=1000, description="how many recent loads make the median")
    min_history: int = Field(3, ge=1, description="judge only once this many loads exist")
    severity: Literal["error", "warn"] = "error"


class QualitySpec(Strict):
    circuit_breaker: CircuitBreaker = Field(
        DEFAULT_BREAKER,
        description="default: trip above 50% quarantined (from 100 rows read), or when every row failed",
    )
    volume: VolumeCheck | None = None
    rules: list[Rule] = Field(default_factory=list)
    score_column: str | None = Field(
        None, description="add each row's quality score (completeness and rules passed, 0 to 1) as this column"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> QualitySpec:
        names = [r.check_name for r in self.rules]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"two rules share the check name(s) {duplicated}; give one of them `name: ...`")
        return self
