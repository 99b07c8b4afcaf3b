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

start_if_down postgresql 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql 2>/dev/null | head -n1)" main start
start_if_down mariadb 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
start_if_down redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log
start_if_down rabbitmq 5672 rabbitmq-server -detached
start_if_down nats 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
  -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log

# The suite needs PostgreSQL; fail loudly rather than let tests error one by one.
for _ in $(seq 1 60); do port_open 5432 && exit 0; sleep 1; done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
