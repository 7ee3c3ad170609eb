#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks: initdb into a temp folder, listen
# on 127.0.0.1 at a free port (unix socket in the temp folder), print the connection URL,
# and stop and delete everything on exit.
#
#   scripts/pg-test-server.sh                  start, print the URL, wait for Ctrl-C / SIGTERM
#   scripts/pg-test-server.sh CMD [ARGS...]    start, run CMD with TASK_CORE_PG_URL exported,
#                                              stop, exit with CMD's status
#
# Environment:
#   PG_TEST_SERVER_DURABLE=1   keep fsync and synchronous_commit on (benchmarks); default off,
#                              which only matters if the machine crashes (the data is thrown away)
#   PG_TEST_SERVER_QUIET=1     print nothing but the URL line
#
# Needs the PostgreSQL server binaries (Debian: apt-get install -y postgresql): found on PATH
# or under /usr/lib/postgresql/*/bin. initdb refuses to run as root, so as root the server
# runs as the `postgres` user (or a `task-core-pg` system user created for it).
set -euo pipefail

log() { [ "${PG_TEST_SERVER_QUIET:-}" = "1" ] || echo "pg-test-server: $*" >&2; }

bindir=""
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
  bindir="$(dirname "$(command -v initdb)")"
else
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir="$d"; break; fi
  done
fi
if [ -z "$bindir" ]; then
  echo "pg-test-server: no PostgreSQL server binaries (initdb, pg_ctl); install them with: apt-get install -y postgresql" >&2
  exit 1
fi

# Who runs the server.
as_user=()
if [ "$(id -u)" = "0" ]; then
  user="postgres"
  if ! id "$user" >/dev/null 2>&1; then
    user="task-core-pg"
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  as_user=(runuser -u "$user" --)
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/task-core-pg.XXXXXX")"
chmod 755 "$dir"
[ ${#as_user[@]} -eq 0 ] || chown "$user" "$dir"
data="$dir/data"

stopped=0
stop() {
  [ "$stopped" = "1" ] && return
  stopped=1
  if [ -f "$data/postmaster.pid" ]; then
    "${as_user[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  log "stopped"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port: ask the kernel for one (node is always here: the project needs it).
port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"

"${as_user[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
  >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }

settings=(
  -c listen_addresses=127.0.0.1
  -c port="$port"
  -c unix_socket_directories="$dir"
  -c max_connections=200
  -c shared_buffers=128MB
  -c log_min_messages=warning
)
if [ "${PG_TEST_SERVER_DURABLE:-}" != "1" ]; then
  settings+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
fi

"${as_user[@]}" "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 -o "${settings[*]}" start >/dev/null ||
  { cat "$dir/server.log" >&2; exit 1; }

url="postgres://postgres@127.0.0.1:$port/postgres"
export TASK_CORE_PG_URL="$url"
log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir$([ "${PG_TEST_SERVER_DURABLE:-}" = "1" ] || echo ", fsync off"))"
echo "TASK_CORE_PG_URL=$url"

if [ $# -gt 0 ]; then
  status=0
  "$@" || status=$?
  exit "$status"
fi

log "running until Ctrl-C or SIGTERM"
while :; do sleep 3600 & wait $! || true; done
