-- Units and revenue per day and product category.
select
    o.order_date,
    p.category,
    cast(sum(o.quantity) as bigint) as units,
    cast(sum(o.amount_eur) as decimal(14, 2)) as revenue
from {{ ref('stg_orders') }} as o
inner join {{ ref('stg_products') }} as p on p.product_id = o.product_id
group by o.order_date, p.category
