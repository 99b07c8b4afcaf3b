#!/usr/bin/env bash
# First start of the compose PostgreSQL (docker-entrypoint-initdb.d): the warehouse and Dagster
# databases, and the two login roles with their passwords from the mounted secrets. The
# `warehouse-init` service then adds the platform's tables, the reader roles and every grant
# (`etl warehouse init --roles`, which adopts these roles).
set -euo pipefail
warehouse_password=$(cat /run/secrets/warehouse_password)
dagster_password=$(cat /run/secrets/dagster_pg_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v warehouse_password="$warehouse_password" -v dagster_password="$dagster_password" <<'SQL'
CREATE ROLE etl_loader LOGIN PASSWORD :'warehouse_password';
CREATE ROLE etl_dagster LOGIN PASSWORD :'dagster_password';
CREATE DATABASE warehouse;
CREATE DATABASE dagster OWNER etl_dagster;
SQL
