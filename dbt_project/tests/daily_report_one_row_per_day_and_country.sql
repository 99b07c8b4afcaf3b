-- The daily report has one row per day and country.
select order_date, country, count(*) as rows_for_key
from {{ ref('daily_report') }}
group by order_date, country
having count(*) > 1
