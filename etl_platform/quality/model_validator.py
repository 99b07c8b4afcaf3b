"""A Pandera DataFrameModel as a pipeline's row validator (for pipelines declared in Python).

Each of the model's checks becomes a named check (`<column>_<check>`, e.g. `revenue_greater_than_or_equal_to`,
`customer_id_unique`, `orders_not_null`); failing rows go to quarantine like any rule's, and the
asset gets one asset check per name. A frame pipeline validates its whole frame at once, so
uniqueness holds across all its rows.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa

from etl_platform.errors import TransformError
from etl_platform.quality.validator import Failure, RuleStats, split_failures
from etl_platform.sources.base import PROVENANCE
from etl_platform.transforms.base import StepOutput

SCHEMA_CHECK = "model_schema"


def model_check_names(model: type[pandera.DataFrameModel]) -> dict[str, str]:
    """Check name -> description, for every check the model declares (and one for the schema itself)."""
    schema = model.to_schema()
    names = {SCHEMA_CHECK: f"data has the columns and types of {model.__name__}"}
    for column_name, column in schema.columns.items():
        for check in column.checks:
            names[f"{column_name}_{check.name}"] = f"{column_name}: {check.name}{_arguments(check)}"
        if column.unique:
            names[f"{column_name}_unique"] = f"{column_name} has no duplicates"
        if not column.nullable:
            names[f"{column_name}_not_null"] = f"{column_name} is not null"
    return names


def _arguments(check: pandera.Check) -> str:
    text = str(check)
    return text[text.index("(") : text.rindex(")") + 1] if "(" in text else ""


class ModelValidator:
    def __init__(self, model: type[pandera.DataFrameModel], where: str):
        self.model = model
        self.schema = model.to_schema()
        self.where = where
        self.names = model_check_names(model)

    def _check_name(self, column: str | None, check: str, number: float | None) -> str:
        if column in self.schema.columns:
            if number is not None and not pd.isna(number):
                return f"{column}_{self.schema.columns[column].checks[int(number)].name}"
            if check == "not_nullable":
                return f"{column}_not_null"
            if check == "field_uniqueness":
                return f"{column}_unique"
        return SCHEMA_CHECK

    def apply(self, table: pa.Table) -> tuple[StepOutput, dict[str, RuleStats]]:
        stats = {name: RuleStats(rows_checked=len(table)) for name in self.names}
        frame = table.drop_columns([c for c in PROVENANCE if c in table.column_names]).to_pandas()
        try:
            self.model.validate(frame, lazy=True)
            return StepOutput(table), stats
        except pandera.errors.SchemaErrors as errors:
            cases = errors.failure_cases
        failing_rows: dict[int, list[Failure]] = {}
        whole_columns = []
        for case in cases.to_dict("records"):
            name = self._check_name(case["column"], str(case["check"]), case.get("check_number"))
            if case["index"] is None or pd.isna(case["index"]):
                whole_columns.append(f"{case['column'] or 'frame'}: {case['check']} ({case['failure_case']})")
                continue
            value = None if pd.isna(case["failure_case"]) else str(case["failure_case"])
            failing_rows.setdefault(int(case["index"]), []).append(Failure(name, case["column"], value, self.names[name]))
        if whole_columns:
            raise TransformError(
                f"{self.where}: the frame does not fit {self.model.__name__}: {'; '.join(whole_columns)}; "
                f"fix the function's output or the model"
            )
        return split_failures(table, failing_rows, stats)
