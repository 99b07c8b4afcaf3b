-- Refunds are not orders: no day and country may show negative revenue.
select *
from {{ ref('daily_report') }}
where revenue < 0
