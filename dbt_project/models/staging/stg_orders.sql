select
    order_id,
    customer_id,
    product_id,
    quantity,
    amount as amount_eur,
    ordered_at,
    order_date,
    product_category
from {{ source('analytics', 'orders') }}
