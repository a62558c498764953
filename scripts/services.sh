#!/usr/bin/env bash
# Make sure the services the tests talk to are up: PostgreSQL on 127.0.0.1:5432 (trust auth,
# database `test`) and Mosquitto on 127.0.0.1:1883. Installs (Debian packages) and starts what is
# missing; exits non-zero when a service cannot be had, so the tests fail instead of skipping.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done; return 1; }
apt_ready=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "services: need root to install $*" >&2; return 1; fi
  if [ "$apt_ready" = 0 ]; then apt-get update -qq; apt_ready=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! port_open 5432; then
  echo "services: PostgreSQL is not listening on 127.0.0.1:5432; starting it"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
  version="$(ls /etc/postgresql | head -n1)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 || { echo "services: PostgreSQL could not be started" >&2; exit 1; }
fi
# trust auth and the `test` database (a fresh install has neither)
if command -v psql >/dev/null && ! psql -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1; then
  echo "services: creating database test"
  su postgres -c "psql -c 'create database test'" >/dev/null 2>&1 || true
fi
if ! port_open 1883; then
  echo "services: Mosquitto is not listening on 127.0.0.1:1883; starting it"
  command -v mosquitto >/dev/null || apt_install mosquitto
  mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || mosquitto -d -p 1883
  wait_port 1883 || { echo "services: Mosquitto could not be started" >&2; exit 1; }
fi
# systemd-analyze (the unit file check) and the kernel headers (the seccomp test reads syscall numbers)
need_headers=0
if [ "$(uname -m)" = x86_64 ] && [ ! -f /usr/include/x86_64-linux-gnu/asm/unistd_64.h ]; then need_headers=1; fi
if ! command -v systemd-analyze >/dev/null || [ "$need_headers" = 1 ]; then
  echo "services: installing systemd (systemd-analyze) and linux-libc-dev for the unit tests"
  apt_install systemd linux-libc-dev || { echo "services: systemd-analyze could not be installed" >&2; exit 1; }
fi
if ! command -v mosquitto_passwd >/dev/null || ! command -v mosquitto_pub >/dev/null; then
  apt_install mosquitto mosquitto-clients || { echo "services: mosquitto tools could not be installed" >&2; exit 1; }
fi
# the report's browser test drives Debian's Chromium (browser downloads are not possible here)
if [ ! -x /usr/bin/chromium ]; then
  echo "services: installing Debian's chromium for the browser tests"
  apt_install chromium || { echo "services: chromium could not be installed" >&2; exit 1; }
fi
