#!/usr/bin/env bash
# Start any of the machine's services that is down, then wait until each answers.
# The start commands are the ones this machine kind documents; tests never skip a down service.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_if_down() {
  local name=$1 port=$2; shift 2
  if port_open "$port"; then return 0; fi
  echo "starting $name (port $port was closed)"
  "$@" >/dev/null 2>&1 || echo "warning: could not start $name with: $*"
}

# Change data capture needs PostgreSQL's logical decoding and MariaDB's row binlog with GTIDs.
# Both are server settings that take a restart; each is written and applied only when it differs.
configure_postgresql_for_cdc() {
  local version conf hba
  version=$(ls /etc/postgresql 2>/dev/null | head -n1)
  [ -n "$version" ] || return 0
  conf=/etc/postgresql/$version/main/conf.d/95-etl-cdc.conf
  hba=/etc/postgresql/$version/main/pg_hba.conf
  local changed=0
  if [ ! -f "$conf" ]; then
    printf 'wal_level = logical\nmax_replication_slots = 40\nmax_wal_senders = 40\n' >"$conf"
    changed=1
  fi
  if ! grep -q '^host replication all 127.0.0.1/32 trust' "$hba"; then
    echo 'host replication all 127.0.0.1/32 trust' >>"$hba"
    changed=1
  fi
  # A setting written earlier but never applied (a restart that did not happen) counts as changed.
  if port_open 5432 && [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SHOW wal_level' 2>/dev/null)" != logical ]; then
    changed=1
  fi
  if [ "$changed" = 1 ] && port_open 5432; then
    echo "restarting postgresql for logical replication"
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart >/dev/null 2>&1 || echo "warning: postgresql restart failed"
  fi
}

configure_mariadb_for_cdc() {
  local cnf=/etc/mysql/etl-cdc.cnf main=/etc/mysql/my.cnf
  [ -f "$main" ] || return 0
  local changed=0
  # Compared by content, so a machine holding an older version of the file gets the missing
  # settings (binlog_row_metadata = FULL gives the binlog reader column names) and one restart.
  local wanted
  wanted=$(printf '[mysqld]\nserver_id = 1\nlog_bin = mariadb-bin\nbinlog_format = ROW\nbinlog_row_image = FULL\nbinlog_row_metadata = FULL\nexpire_logs_days = 1\nlocal_infile = 1')
  if [ "$(cat "$cnf" 2>/dev/null)" != "$wanted" ]; then
    printf '%s\n' "$wanted" >"$cnf"
    changed=1
  fi
  if ! grep -q "^!include $cnf" "$main"; then
    echo "!include $cnf" >>"$main"
    changed=1
  fi
  if port_open 3306 && [ "$(mariadb -uroot -h 127.0.0.1 -Nse 'SELECT @@log_bin' 2>/dev/null)" != 1 ]; then
    changed=1
  fi
  if [ "$changed" = 1 ] && port_open 3306; then
    echo "restarting mariadb for the row binlog"
    mariadb-admin -uroot shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do port_open 3306 || break; sleep 1; done
  fi
}

configure_postgresql_for_cdc
configure_mariadb_for_cdc

start_if_down postgresql 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql 2>/dev/null | head -n1)" main start
start_if_down mariadb 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
start_if_down redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log
start_if_down rabbitmq 5672 rabbitmq-server -detached
start_if_down nats 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
  -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log

# The suite needs every one of them; fail loudly rather than let tests error one by one.
for port in 5432 3306 6379 5672 4222; do
  for _ in $(seq 1 60); do port_open "$port" && continue 2; sleep 1; done
  echo "the service on 127.0.0.1:$port did not come up" >&2
  exit 1
done
