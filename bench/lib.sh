# shellcheck shell=bash
# What the benchmarks share: a temp dir removed on exit with everything started in it, a
# throwaway PostgreSQL 15 with a SCRAM role `bench`, PgBouncer (session pooling) and the release
# gateway (service account `bench-agent`) in front of it, all on free loopback ports. Source it
# after scripts/lib.sh; it defines functions and changes nothing until they are called.
#
# After bench_setup: TMP, PG_PORT, PGB_PORT, PGB2_PORT, GW_PORT, GW_HTTP_PORT, DB_PASSWORD. After
# bench_start_postgres: SCRAM_SECRET. After bench_start_gateway: TOKEN, GW_PID. A script that
# starts more (a tunnel) puts its pid in TUNNEL_PID so the cleanup stops it first.

GW_PID=""
TUNNEL_PID=""

# $1: the temp dir's name prefix. Makes the dir, arms the cleanup, picks five distinct ports.
bench_setup() {
    TMP="$(mktemp -d "/tmp/$1.XXXXXX")"
    chmod 755 "$TMP"
    mkdir -p "$TMP/pg" "$TMP/gateway" "$TMP/runs"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$TMP/pg"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    local ports=() p
    while [ "${#ports[@]}" -lt 5 ]; do
        p="$(gh_free_port)"
        case " ${ports[*]-} " in *" $p "*) ;; *) ports+=("$p") ;; esac
    done
    PG_PORT="${ports[0]}" PGB_PORT="${ports[1]}" GW_PORT="${ports[2]}" GW_HTTP_PORT="${ports[3]}"
    PGB2_PORT="${ports[4]}"
    DB_PASSWORD="$(gh_random 32)"
}

bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "$TUNNEL_PID" "$GW_PID" "${GWB_PID:-}"; do
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$TMP"/*/pgbouncer.pid; do
        [ -s "$pid" ] && { kill -TERM "$(cat "$pid")" 2>/dev/null || true; }
    done
    if [ -f "$TMP/pg/data/postmaster.pid" ]; then
        gh_as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        gh_log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

# Everything started from here on inherits this priority: on a shared machine, NICE=-10 (root)
# keeps other work (a compile, say) from skewing one target's runs more than another's.
bench_renice() {
    if [ "${NICE:-0}" != 0 ]; then
        renice -n "$NICE" -p $$ >/dev/null || gh_die "cannot set niceness $NICE (negative needs root)"
    fi
}

# $1: shared_buffers. Starts the cluster and creates the SCRAM role and database `bench`.
bench_start_postgres() {
    gh_log "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT ($TMP/pg)"
    gh_as_postgres "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$TMP/pg/initdb.log" 2>&1 ||
        { cat "$TMP/pg/initdb.log" >&2; gh_die "initdb failed"; }
    cat >>"$TMP/pg/data/postgresql.conf" <<EOF

# bench/lib.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP/pg'
max_connections = 100
shared_buffers = $1
password_encryption = 'scram-sha-256'
EOF
    gh_as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/postgres.log" -w start >/dev/null ||
        { tail -n 20 "$TMP/pg/postgres.log" >&2; gh_die "PostgreSQL did not start"; }
    gh_as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP/pg" -p "$PG_PORT" -U postgres -d postgres >/dev/null <<SQL
CREATE ROLE bench LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE bench OWNER bench;
CREATE DATABASE gatehouse_store OWNER bench;
CREATE DATABASE gatehouse_store_b OWNER bench;
SQL
    SCRAM_SECRET="$(gh_as_postgres "$PG_BIN/psql" -X -At -h "$TMP/pg" -p "$PG_PORT" -U postgres -d postgres \
        -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'")"
    case "$SCRAM_SECRET" in SCRAM-SHA-256*) ;; *) gh_die "the bench role has no SCRAM secret" ;; esac
}

# $1: the PgBouncer binary; $2: its dir under TMP; $3: its port; $4: the port it forwards to;
# $5 $6 $7: auth_type, user and secret of its userlist. Session pooling, no TLS behind it.
bench_start_pgbouncer() {
    local dir="$TMP/$2"
    gh_log "starting PgBouncer on 127.0.0.1:$3 in front of 127.0.0.1:$4"
    mkdir -p "$dir"
    printf '"%s" "%s"\n' "$6" "$7" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$4 dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $3
unix_socket_dir =
auth_type = $5
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 20
server_tls_sslmode = disable
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
    chmod 600 "$dir/userlist.txt"
    gh_as_postgres "$1" -d -q "$dir/pgbouncer.ini" ||
        { tail -n 20 "$dir/pgbouncer.log" >&2 || true; gh_die "PgBouncer did not start"; }
}

# $1: the gateway binary; $2 (optional): TOML appended to the config. One environment `bench`
# on the cluster, reachable by the service account whose token ends up in TOKEN. STORE=postgres
# puts the gateway's store and audit trail in the cluster's database `gatehouse_store`, as
# replicas sharing a store run (the default: SQLite files in its data_dir).
bench_start_gateway() {
    gh_log "starting the gateway on 127.0.0.1:$GW_PORT"
    local dir="${GW_DIR:-$TMP/gateway}"
    mkdir -p "$dir"
    TOKEN="$("$1" new-token | awk '$1 == "token" { print $3 }')"
    local sha
    sha="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
    cat >"$dir/gatehouse.toml" <<EOF
[server]
postgres_listen = "127.0.0.1:$GW_PORT"
http_listen     = "127.0.0.1:$GW_HTTP_PORT"
public_url      = "http://127.0.0.1:$GW_HTTP_PORT"
data_dir        = "state"
${GATEHOUSE_WORKERS:+worker_threads = $GATEHOUSE_WORKERS}

[[environments]]
name     = "bench"
tier     = "development"
upstream = "postgresql://bench@127.0.0.1:$PG_PORT/bench?sslmode=disable"
upstream_password_env = "GATEHOUSE_BENCH_DB_PASSWORD"

[[service_accounts]]
name         = "bench-agent"
token_sha256 = "$sha"
groups       = ["bench"]

[[grants]]
groups       = ["bench"]
environments = ["bench"]
${2:-}
EOF
    if [ "${STORE:-sqlite}" = postgres ]; then
        cat >>"$dir/gatehouse.toml" <<EOF

[store]
url = "postgresql://bench@127.0.0.1:$PG_PORT/${GW_STORE_DB:-gatehouse_store}?sslmode=disable"
password_env = "GATEHOUSE_BENCH_DB_PASSWORD"
EOF
    fi
    GATEHOUSE_BENCH_DB_PASSWORD="$DB_PASSWORD" "$1" serve --config "$dir/gatehouse.toml" \
        >"$dir/gateway.log" 2>&1 </dev/null &
    GW_PID=$!
    gh_wait_http 30 "http://127.0.0.1:$GW_HTTP_PORT/healthz" ||
        { tail -n 20 "$dir/gateway.log" >&2; gh_die "the gateway did not become healthy"; }
}
