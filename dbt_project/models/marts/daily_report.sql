-- Revenue and order counts per day and customer country: the daily report.
select
    o.order_date,
    c.country_code as country,
    count(*) as orders,
    cast(sum(o.amount_eur) as decimal(14, 2)) as revenue,
    count(distinct o.customer_id) as customers
from {{ ref('stg_orders') }} as o
inner join {{ ref('stg_customers') }} as c on c.customer_id = o.customer_id
group by o.order_date, c.country_code
