"""A pipeline declared in Python: customer value computed with pandas, checked by a Pandera model.

It depends on the orders and customers pipelines, reads their published tables, and publishes
analytics.customer_value through the same write-audit-publish path as any pipeline. Rows that
break the model are quarantined, and each of the model's checks is an asset check.
"""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from etl_platform.spec import PipelineSpec, frame_pipeline
from etl_platform.warehouse import Warehouse


class CustomerValue(pa.DataFrameModel):
    customer_id: Series[int] = pa.Field(unique=True)
    country: Series[str] = pa.Field(nullable=True)
    orders: Series[int] = pa.Field(ge=1)
    revenue: Series[float] = pa.Field(ge=0, le=1_000_000)
    average_order: Series[float] = pa.Field(ge=0)


SPEC = PipelineSpec(
    id="customer_value",
    description="Orders, revenue and average order value per customer, computed in Python.",
    group="reporting",
    owner="team:analytics",
    source={"type": "frame"},
    destination={"dataset": "analytics.customer_value", "write": "replace"},
    dependencies=["orders", "customers"],
)


@frame_pipeline(SPEC, model=CustomerValue)
def customer_value(warehouse: Warehouse) -> pd.DataFrame:
    orders = warehouse.read_arrow(
        "SELECT o.customer_id, c.country, o.amount FROM analytics.orders o JOIN analytics.customers c USING (customer_id)"
    ).to_pandas()
    summary = orders.groupby(["customer_id", "country"], as_index=False).agg(orders=("amount", "size"), revenue=("amount", "sum"))
    summary["average_order"] = summary["revenue"] / summary["orders"]
    return summary.astype({"customer_id": "int64", "orders": "int64"})
