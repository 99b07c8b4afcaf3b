#!/usr/bin/env bash
# Write the compose deployment's secrets into deploy/secrets/ (git-ignored), once: an existing file
# is kept, so running it again never changes a password a database already holds.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
new_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24), end="")'; }
keep_or_write() { [ -s "secrets/$1" ] || { new_secret >"secrets/$1"; chmod 600 "secrets/$1"; }; }
for name in postgres_password warehouse_password dagster_pg_password pii_salt s3_secret_key rabbitmq_password grafana_admin_password; do
  keep_or_write "$name"
done
# boto3 reads the S3 key from a credentials file; Dagster's storage URL and the celery broker URL
# are environment variables (neither reads files), so compose.env carries those two passwords.
printf '[default]\naws_access_key_id = etl\naws_secret_access_key = %s\n' "$(cat secrets/s3_secret_key)" >secrets/s3_credentials
printf 'DAGSTER_PG_PASSWORD=%s\nRABBITMQ_PASSWORD=%s\n' "$(cat secrets/dagster_pg_password)" "$(cat secrets/rabbitmq_password)" >secrets/compose.env
chmod 600 secrets/s3_credentials secrets/compose.env
echo "secrets in $(pwd)/secrets"
