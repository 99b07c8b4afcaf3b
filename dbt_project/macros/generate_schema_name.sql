{# Models land in the schema their folder names (staging, marts), not in "<target schema>_staging":
   dataset names stay `schema.table`, the same names the pipelines publish under. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name is not none else target.schema }}
{%- endmacro %}
