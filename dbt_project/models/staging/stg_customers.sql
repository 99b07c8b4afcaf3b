select
    customer_id,
    first_name,
    last_name,
    email,
    email_domain,
    country as country_code,
    signup_date
from {{ source('analytics', 'customers') }}
