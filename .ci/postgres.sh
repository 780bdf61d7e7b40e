#!/usr/bin/env bash
# Starts a PostgreSQL server for the metadata store's tests and exports its URL.
#
#   source .ci/postgres.sh      # .ci/run does this
#
# Idempotent: installs Debian's postgresql package only if no server binary is present, creates
# a cluster in $ARCHIPEL_PG_DIR (default /tmp/archipel-pg) only once, starts it on
# 127.0.0.1:$ARCHIPEL_PG_PORT (default 55432) unless it already answers there, creates role
# and database `archipel` if missing, then exports
#   ARCHIPEL_TEST_POSTGRES_URL=postgres://archipel:archipel@127.0.0.1:PORT/archipel
# Runs as root (as CI and developers here do); the server itself runs as the `postgres` user.

archipel_pg_start() {
    local port="${ARCHIPEL_PG_PORT:-55432}"
    local dir="${ARCHIPEL_PG_DIR:-/tmp/archipel-pg}"
    local bin
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "postgres.sh: installing Debian's postgresql package"
        apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
    fi
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        # A server killed with -9 (e.g. when the previous session ended) leaves its lock files
        # behind, and an unreaped zombie still "owns" them; drop each whose PID is gone or a
        # zombie, or the new server refuses to start.
        local lock oldpid state
        for lock in "$dir/postmaster.pid" "$dir/.s.PGSQL.$port.lock"; do
            [ -f "$lock" ] || continue
            oldpid="$(head -n 1 "$lock")"
            state="$(ps -o stat= -p "$oldpid" 2>/dev/null | cut -c1)"
            if [ -z "$state" ] || [ "$state" = Z ]; then
                rm -f "$lock"
            fi
        done
        if [ ! -f "$dir/PG_VERSION" ]; then
            mkdir -p "$dir" && chown postgres:postgres "$dir" && chmod 700 "$dir" || return 1
            su postgres -s /bin/sh -c "'$bin/initdb' -D '$dir' -U postgres --auth=trust -E UTF8 --locale=C" \
                >/dev/null || return 1
        fi
        su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir' -l '$dir/server.log' -w -t 60 \
            -o \"-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir' -c max_connections=200\" start" \
            >/dev/null || { tail -n 20 "$dir/server.log"; return 1; }
    fi
    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'archipel'")" != 1 ]; then
        "${psql[@]}" -c "CREATE ROLE archipel LOGIN PASSWORD 'archipel'" || return 1
    fi
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'archipel'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE archipel OWNER archipel" || return 1
    fi
    export ARCHIPEL_TEST_POSTGRES_URL="postgres://archipel:archipel@127.0.0.1:$port/archipel"
    echo "postgres.sh: $("$bin/postgres" --version) on 127.0.0.1:$port"
    echo "ARCHIPEL_TEST_POSTGRES_URL=$ARCHIPEL_TEST_POSTGRES_URL"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Executed rather than sourced: start, and print the export line for the caller.
    set -euo pipefail
    archipel_pg_start
    echo "export ARCHIPEL_TEST_POSTGRES_URL=$ARCHIPEL_TEST_POSTGRES_URL"
else
    archipel_pg_start || { echo "postgres.sh: could not start PostgreSQL" >&2; return 1; }
fi
