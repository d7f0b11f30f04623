# shellcheck shell=bash
# PostgreSQL (installed major version: 15 on Debian 12, 17 on Debian 13) on 127.0.0.1:5432,
# own cluster under $STATE/data/postgres/<major>, role + database "dagster" for Dagster storage.
SVC_NAME=postgres
SB_PG_PORT=5432
SB_PG_RUN="$STATE/run/postgresql"

# highest installed major version (empty if none)
_pg_major() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x "$d" ]] || continue
    d="${d#/usr/lib/postgresql/}"
    d="${d%%/*}"
    [[ "$d" =~ ^[0-9]+$ ]] || continue
    if [[ -z "$best" ]] || ((d > best)); then best="$d"; fi
  done
  printf '%s' "$best"
}

_pg_bin() { printf '/usr/lib/postgresql/%s/bin' "$(_pg_major)"; }
_pg_data() { printf '%s/data/postgres/%s' "$STATE" "$(_pg_major)"; }

_pg_as_postgres() {
  (cd / && setpriv --reuid=postgres --regid=postgres --init-groups "$@")
}

svc_install() {
  [[ -n "$(_pg_major)" ]] || sb_apt postgresql
  [[ -n "$(_pg_major)" ]] || { sb_log "ERROR: no /usr/lib/postgresql/*/bin/postgres after installing postgresql"; return 1; }
  command -v psql >/dev/null 2>&1 || sb_apt postgresql-client
}

svc_start() {
  local bin data
  bin="$(_pg_bin)"
  data="$(_pg_data)"
  install -d -m 0755 -o postgres -g postgres "$STATE/data/postgres" "$SB_PG_RUN"
  if [[ ! -s "$data/PG_VERSION" ]]; then
    sb_log "initdb $data (PostgreSQL $(_pg_major))"
    install -d -m 0700 -o postgres -g postgres "$data"
    _pg_as_postgres "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >>"$STATE/logs/postgres-initdb.log" 2>&1 ||
      { sb_wait_fail postgres-initdb "initdb failed"; return 1; }
  fi
  if ! sb_pid_alive "$SVC_NAME"; then
    if sb_wait_tcp 127.0.0.1 "$SB_PG_PORT" 1; then
      sb_log "ERROR: 127.0.0.1:$SB_PG_PORT is taken by a PostgreSQL not started by the sandbox (pg_ctlcluster $(_pg_major) main stop?)"
      return 1
    fi
    # a postmaster.pid left by a killed server is removed by postgres itself if stale
  fi
  sb_start "$SVC_NAME" setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$data" \
    -c listen_addresses=127.0.0.1 -c port="$SB_PG_PORT" \
    -c unix_socket_directories="$SB_PG_RUN" -c max_connections=100 \
    -c shared_buffers=64MB -c log_destination=stderr -c logging_collector=off
}

_pg_ready() {
  "$(_pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$SB_PG_PORT" -t 2 >/dev/null 2>&1
}

_pg_dagster_ok() {
  local pass
  pass="$(sb_env_get MLOPS_PG_PASSWORD)"
  [[ -n "$pass" ]] || return 1
  PGPASSWORD="$pass" PGCONNECT_TIMEOUT=3 psql -X -q -t -A -h 127.0.0.1 -p "$SB_PG_PORT" -U dagster -d dagster \
    -c 'select 1' 2>/dev/null | grep -qx 1
}

# role + database, idempotent; the password keeps its value across runs (sandbox.env)
_pg_bootstrap() {
  local pass
  pass="$(sb_env_get MLOPS_PG_PASSWORD)"
  if [[ -z "$pass" ]]; then
    pass="$(sb_rand 32)"
    sb_env_set MLOPS_PG_PASSWORD "$pass"
  fi
  # SQL on stdin: the password never appears in argv
  _pg_as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$SB_PG_RUN" -p "$SB_PG_PORT" -U postgres -d postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dagster') THEN CREATE ROLE dagster LOGIN; END IF;
END \$\$;
ALTER ROLE dagster WITH LOGIN PASSWORD '$pass';
SELECT 'CREATE DATABASE dagster OWNER dagster' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'dagster')\gexec
SQL
  sb_env_set MLOPS_DAGSTER_PG_URL "postgresql://dagster:$pass@127.0.0.1:$SB_PG_PORT/dagster"
}

svc_wait() {
  local end=$((SECONDS + 60))
  until _pg_ready; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "postgres exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "PostgreSQL did not accept connections within 60s"; return 1; }
    sleep 0.3
  done
  _pg_bootstrap
  _pg_dagster_ok || { sb_wait_fail "$SVC_NAME" "cannot log in as dagster@127.0.0.1:$SB_PG_PORT/dagster"; return 1; }
}

svc_status() {
  local v=""
  [[ -z "$(_pg_major)" ]] || v="$("$(_pg_bin)/postgres" --version 2>/dev/null | awk '{print $3; exit}')"
  if sb_pid_alive "$SVC_NAME" && _pg_ready && _pg_dagster_ok; then
    echo "$SVC_NAME up 127.0.0.1:$SB_PG_PORT postgresql-${v:-unknown} db=dagster user=dagster"
  else
    echo "$SVC_NAME down 127.0.0.1:$SB_PG_PORT postgresql-${v:-unknown}"
    return 1
  fi
}

# "fast" shutdown (SIGINT): a plain SIGTERM ("smart") would wait for every client to leave.
svc_stop() {
  sb_pid_alive "$SVC_NAME" || return 0
  local pid i
  pid="$(sb_pid "$SVC_NAME")"
  sb_log "stopping postgres (pid $pid, fast shutdown)"
  kill -INT "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    sb_pid_alive "$SVC_NAME" || return 0
    sleep 0.1
  done
}
