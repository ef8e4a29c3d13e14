#!/usr/bin/env bash
# THE setup command: installs what running needs, builds the gateway and CLI, starts the
# local PostgreSQL 15 cluster with the seeded demo databases, writes a demo config and starts a
# Gatehouse gateway in front of them, then prints a short tour that shows what the gateway does:
# masking, a production DELETE held for approval and approved, a DROP refused, the audit trail.
#
# Re-running is safe: secrets in demo/data/ are kept and reused, the previous demo gateway is
# stopped and a fresh one started. Everything it writes is under demo/data/ (gitignored).
#
# Environment:
#   GATEHOUSE_DEMO_PORT        PostgreSQL-protocol port of the gateway (default 7432)
#   GATEHOUSE_DEMO_HTTP_PORT   HTTP port of the gateway (default 7480)
#   GATEHOUSE_DEMO_CLUSTER     name of the Debian PostgreSQL 15 cluster to use (default main)
#   GATEHOUSE_DEMO_PG_PORT     port for that cluster when this script creates it (default: the
#                              next free one pg_createcluster picks, 5432 for the first)
#   GATEHOUSE_BUILD_PROFILE    cargo profile to build: `dev` (default; a few minutes, what the
#                              demo needs) or `release` (optimised, for real traffic and bench/;
#                              a build of half an hour on two cores)
#   GATEHOUSE_PREBUILT_BIN_DIR a directory holding gatehouse-server and gatehouse already built
#                              (e.g. target/debug): use them instead of building. The end-to-end
#                              test of this script uses it so CI does not compile the workspace
#                              twice.
set -euo pipefail
GH_SCRIPT=setup
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GH_REPO"

[ "$(id -u)" -eq 0 ] ||
    gh_die "run as root (e.g. sudo scripts/setup.sh): it installs Debian packages and starts the system PostgreSQL cluster"

PG_CLUSTER_VERSION=15
PG_CLUSTER_NAME="${GATEHOUSE_DEMO_CLUSTER:-main}"
DEMO_ROLE=gatehouse_demo
DEMO_DB=demo        # environment `demo`, tier development
PROD_DB=demo_prod   # environment `prod`, tier production: the same data, the built-in rules
GW_PORT="${GATEHOUSE_DEMO_PORT:-7432}"
GW_HTTP_PORT="${GATEHOUSE_DEMO_HTTP_PORT:-7480}"
DATA="$GH_REPO/demo/data"
if [ -n "${GATEHOUSE_PREBUILT_BIN_DIR:-}" ]; then
    BIN_DIR="$(cd "$GATEHOUSE_PREBUILT_BIN_DIR" 2>/dev/null && pwd)" ||
        gh_die "GATEHOUSE_PREBUILT_BIN_DIR=$GATEHOUSE_PREBUILT_BIN_DIR is not a directory"
else
    BUILD_PROFILE="${GATEHOUSE_BUILD_PROFILE:-dev}"
    case "$BUILD_PROFILE" in
    dev) PROFILE_DIR=debug ;;
    release) PROFILE_DIR=release ;;
    *) gh_die "GATEHOUSE_BUILD_PROFILE=$BUILD_PROFILE: use dev or release" ;;
    esac
    BIN_DIR="$(cd "$GH_REPO" && mkdir -p "${CARGO_TARGET_DIR:-target}/$PROFILE_DIR" && cd "${CARGO_TARGET_DIR:-target}/$PROFILE_DIR" && pwd)"
fi
BIN="$BIN_DIR/gatehouse-server"
CLI="$BIN_DIR/gatehouse"
CONF="$DATA/gatehouse.toml"
PIDFILE="$DATA/gateway.pid"
LOG="$DATA/gateway.log"
PASSWORD_VAR=GATEHOUSE_DEMO_DB_PASSWORD

# --- 1. dependencies and the build -------------------------------------------------------------
"$GH_REPO/scripts/install-deps.sh" run
if [ -n "${GATEHOUSE_PREBUILT_BIN_DIR:-}" ]; then
    [ -x "$BIN" ] && [ -x "$CLI" ] || gh_die "GATEHOUSE_PREBUILT_BIN_DIR=$BIN_DIR lacks gatehouse-server or gatehouse"
else
    gh_cargo_path || gh_die "cargo is not on PATH"
    # The demo needs a working gateway in minutes, not an optimised one in half an hour: the
    # dev profile already optimises the password hashing and crypto crates.
    gh_log "building the gateway and CLI (cargo build --profile $BUILD_PROFILE -p gatehouse-server -p gatehouse-client)"
    cargo build --profile "$BUILD_PROFILE" -p gatehouse-server -p gatehouse-client
    [ -x "$BIN" ] && [ -x "$CLI" ] || gh_die "the build did not produce $BIN and $CLI"
fi

mkdir -p "$DATA"
chmod 700 "$DATA"
grep -qxF '/demo/data' .gitignore 2>/dev/null || echo '/demo/data' >>.gitignore

# --- 2. PostgreSQL -------------------------------------------------------------------------------
cluster_field() { # $1: column of pg_lsclusters (3 port, 4 status)
    pg_lsclusters -h 2>/dev/null |
        awk -v v="$PG_CLUSTER_VERSION" -v n="$PG_CLUSTER_NAME" -v f="$1" '$1 == v && $2 == n { print $f }'
}

if [ -z "$(cluster_field 2)" ]; then
    gh_log "creating the PostgreSQL cluster $PG_CLUSTER_VERSION/$PG_CLUSTER_NAME"
    port_arg=()
    [ -n "${GATEHOUSE_DEMO_PG_PORT:-}" ] && port_arg=(--port "$GATEHOUSE_DEMO_PG_PORT")
    pg_createcluster "${port_arg[@]}" "$PG_CLUSTER_VERSION" "$PG_CLUSTER_NAME" >/dev/null
fi
case "$(cluster_field 4)" in
online*) ;;
*)
    gh_log "starting the PostgreSQL cluster $PG_CLUSTER_VERSION/$PG_CLUSTER_NAME"
    pg_ctlcluster "$PG_CLUSTER_VERSION" "$PG_CLUSTER_NAME" start
    ;;
esac
PGPORT="$(cluster_field 3)"
[ -n "$PGPORT" ] || gh_die "cannot tell the port of cluster $PG_CLUSTER_VERSION/$PG_CLUSTER_NAME (pg_lsclusters)"
for _ in $(seq 1 50); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break
    sleep 0.2
done
"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" ||
    gh_die "PostgreSQL $PG_CLUSTER_VERSION/$PG_CLUSTER_NAME does not accept connections on 127.0.0.1:$PGPORT (see /var/log/postgresql/)"

# Superuser SQL over the cluster's Unix socket (peer authentication as the postgres user). SQL
# comes on stdin, so passwords never show in a process list.
as_superuser() { # $1: database; SQL on stdin
    gh_as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d "$1" >/dev/null
}

secret_file() { # $1: path; creates it with a random value (mode 0600) if missing; prints it
    if [ ! -s "$1" ]; then
        (umask 077 && gh_random 32 >"$1")
    fi
    chmod 600 "$1"
    cat "$1"
}

DB_PASSWORD="$(secret_file "$DATA/upstream-password")"

# The role's password is set on every run, so the file and the role cannot disagree.
as_superuser postgres <<SQL
SET password_encryption = 'scram-sha-256';
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DEMO_ROLE') AS missing \gset
\if :missing
CREATE ROLE $DEMO_ROLE LOGIN;
\endif
ALTER ROLE $DEMO_ROLE WITH LOGIN PASSWORD '$DB_PASSWORD';
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DEMO_DB') AS missing \gset
\if :missing
CREATE DATABASE $DEMO_DB OWNER $DEMO_ROLE;
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PROD_DB') AS missing \gset
\if :missing
CREATE DATABASE $PROD_DB OWNER $DEMO_ROLE;
\endif
SQL

# The demo data belongs to the demo role; each database is seeded once, and left alone
# afterwards. Both get the same customers and orders.
seed() { # $1: database
as_superuser "$1" <<'SQL'
SET client_min_messages = warning;
SET ROLE gatehouse_demo;
BEGIN;
CREATE TABLE IF NOT EXISTS customers (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    full_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    phone       text,
    city        text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  integer NOT NULL REFERENCES customers (id),
    ordered_at   timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'refunded')),
    total        numeric(10, 2) NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);

SELECT NOT EXISTS (SELECT 1 FROM customers) AS empty \gset
\if :empty
INSERT INTO customers (full_name, email, phone, city, country, created_at) VALUES
    ('Ana Ribeiro',       'ana.ribeiro@example.com',     '+351 912 345 678',  'Lisbon',    'PT', '2024-01-14 09:12:00+00'),
    ('Jonas Becker',      'jonas.becker@example.de',     '+49 151 2345 6789', 'Berlin',    'DE', '2024-02-03 16:40:00+00'),
    ('Priya Natarajan',   'priya.n@example.in',          '+91 98450 12345',   'Bengaluru', 'IN', '2024-02-21 05:03:00+00'),
    ('Liam O''Connor',    'liam.oconnor@example.ie',     '+353 87 123 4567',  'Dublin',    'IE', '2024-03-09 11:27:00+00'),
    ('Sofia Rossi',       'sofia.rossi@example.it',      '+39 347 123 4567',  'Milan',     'IT', '2024-03-30 14:55:00+00'),
    ('Kenji Watanabe',    'k.watanabe@example.jp',       '+81 90 1234 5678',  'Osaka',     'JP', '2024-04-18 02:10:00+00'),
    ('Amara Okafor',      'amara.okafor@example.ng',     '+234 803 123 4567', 'Lagos',     'NG', '2024-05-02 08:45:00+00'),
    ('Mateo García',      'mateo.garcia@example.es',     '+34 612 345 678',   'Valencia',  'ES', '2024-05-27 19:20:00+00'),
    ('Emily Clarke',      'emily.clarke@example.co.uk',  '+44 7700 900123',   'Leeds',     'GB', '2024-06-11 10:05:00+00'),
    ('Noah Thompson',     'noah.t@example.com',          '+1 415 555 0142',   'Oakland',   'US', '2024-07-04 21:30:00+00'),
    ('Chloé Martin',      'chloe.martin@example.fr',     '+33 6 12 34 56 78', 'Lyon',      'FR', '2024-08-19 13:15:00+00'),
    ('Lars Nilsson',      'lars.nilsson@example.se',     '+46 70 123 45 67',  'Uppsala',   'SE', '2024-09-08 07:50:00+00');

-- A few orders per customer, spread over the year; deterministic so every demo looks alike.
INSERT INTO orders (customer_id, ordered_at, status, total)
SELECT c.id,
       c.created_at + make_interval(days => n * 17 + c.id),
       (ARRAY['paid', 'shipped', 'shipped', 'pending', 'refunded'])[1 + (c.id + n) % 5],
       round((19.90 + ((c.id * 37 + n * 53) % 400) + ((c.id + n) % 100) / 100.0)::numeric, 2)
FROM customers c
CROSS JOIN generate_series(1, 2 + c.id % 4) AS n
ORDER BY 2;
\endif
COMMIT;
SQL
}
seed "$DEMO_DB"
seed "$PROD_DB"

PGPASSWORD="$DB_PASSWORD" "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PGPORT" -U "$DEMO_ROLE" -d "$DEMO_DB" \
    -c 'SELECT 1' >/dev/null ||
    gh_die "the role $DEMO_ROLE cannot log in over TCP to 127.0.0.1:$PGPORT with its password; check pg_hba.conf (a 'host all all 127.0.0.1/32 scram-sha-256' line)"

# --- 3. Gatehouse identities ---------------------------------------------------------------------
TOKEN_FILE="$DATA/demo-agent.token"
if [ ! -s "$TOKEN_FILE" ]; then
    out="$("$BIN" new-token)"
    token="$(printf '%s\n' "$out" | awk '$1 == "token" { print $3 }')"
    [ -n "$token" ] || gh_die "unexpected output from gatehouse-server new-token"
    (umask 077 && printf '%s\n' "$token" >"$TOKEN_FILE")
fi
chmod 600 "$TOKEN_FILE"
TOKEN="$(head -n1 "$TOKEN_FILE")"
TOKEN_SHA256="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"

# The admin's password is kept in demo/data/admin-password (0600, like the agent's token: this
# is a demo on your machine), so the tour's login line works on every run. Delete the file and
# re-run for a new one.
ADMIN_PASSWORD_FILE="$DATA/admin-password"
ADMIN_HASH_FILE="$DATA/admin-password.argon2"
if [ ! -s "$ADMIN_PASSWORD_FILE" ] || [ ! -s "$ADMIN_HASH_FILE" ]; then
    (umask 077 && gh_random 20 >"$ADMIN_PASSWORD_FILE" && echo >>"$ADMIN_PASSWORD_FILE")
    hash="$(head -n1 "$ADMIN_PASSWORD_FILE" | tr -d '\n' | "$BIN" hash-password)"
    (umask 077 && printf '%s\n' "$hash" >"$ADMIN_HASH_FILE")
fi
chmod 600 "$ADMIN_PASSWORD_FILE" "$ADMIN_HASH_FILE"
ADMIN_PASSWORD="$(head -n1 "$ADMIN_PASSWORD_FILE")"
ADMIN_HASH="$(head -n1 "$ADMIN_HASH_FILE")"

# --- 4. the config -------------------------------------------------------------------------------
(
    umask 077
    cat >"$CONF.new" <<TOML
# Written by scripts/setup.sh; rewritten on every run (edit the script, not this file).

[server]
postgres_listen = "127.0.0.1:$GW_PORT"
http_listen     = "127.0.0.1:$GW_HTTP_PORT"
public_url      = "http://127.0.0.1:$GW_HTTP_PORT"
data_dir        = "state"            # relative to this file: demo/data/state
admin_groups    = ["admins"]
console_dir     = "$GH_REPO/ui/dist"  # the web console, built by scripts/install-deps.sh

# A held statement waits this long for an approver: time enough to follow the tour.
approval_window_seconds = 120

[[environments]]
name        = "$DEMO_DB"
tier        = "development"
description = "Local demo database seeded by scripts/setup.sh"
tags        = ["demo"]
upstream    = "postgresql://$DEMO_ROLE@127.0.0.1:$PGPORT/$DEMO_DB"
upstream_password_env = "$PASSWORD_VAR"   # the gateway's start command sets it from demo/data/upstream-password

# The same data as production: the built-in production rules apply here (no DROP or TRUNCATE,
# an agent's writes held for approval, ...), and admins approve.
[[environments]]
name        = "prod"
tier        = "production"
description = "The demo's production database: same data, production guardrails"
tags        = ["demo"]
upstream    = "postgresql://$DEMO_ROLE@127.0.0.1:$PGPORT/$PROD_DB"
upstream_password_env = "$PASSWORD_VAR"

[[service_accounts]]
name         = "demo-agent"           # an AI agent: service accounts are identities of kind agent
token_sha256 = "$TOKEN_SHA256"       # token in demo/data/demo-agent.token
groups       = ["agents"]

[[users]]
name            = "admin"
password_argon2 = "$ADMIN_HASH"     # password in demo/data/admin-password
groups          = ["admins"]

[[grants]]
groups       = ["agents", "admins"]
environments = ["$DEMO_DB", "prod"]
TOML
)
"$BIN" check-config --config "$CONF.new" >/dev/null
mv -f "$CONF.new" "$CONF"

# --- 5. (re)start the gateway --------------------------------------------------------------------
is_our_gateway() { # $1: pid
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "gatehouse-server serve --config $CONF"
}
if [ -s "$PIDFILE" ]; then
    old="$(cat "$PIDFILE")"
    if is_our_gateway "$old"; then
        gh_log "stopping the previous demo gateway (pid $old)"
        kill -TERM "$old" 2>/dev/null || true
        for _ in $(seq 1 100); do
            is_our_gateway "$old" || break
            sleep 0.1
        done
        if is_our_gateway "$old"; then
            gh_log "pid $old ignored SIGTERM for 10 s; killing it"
            kill -KILL "$old" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$PIDFILE"
fi
for port in "$GW_PORT" "$GW_HTTP_PORT"; do
    if gh_port_busy "$port"; then
        gh_die "port $port on 127.0.0.1 is taken by another program; stop it, or choose other ports with GATEHOUSE_DEMO_PORT / GATEHOUSE_DEMO_HTTP_PORT"
    fi
done

gh_log "starting the gateway (log: demo/data/gateway.log)"
cd "$DATA"
env "$PASSWORD_VAR=$DB_PASSWORD" nohup "$BIN" serve --config "$CONF" >"$LOG" 2>&1 </dev/null &
GW_PID=$!
cd "$GH_REPO"
echo "$GW_PID" >"$PIDFILE"

healthy=0
for _ in $(seq 1 300); do
    if ! kill -0 "$GW_PID" 2>/dev/null; then
        tail -n 20 "$LOG" >&2 || true
        gh_die "the gateway exited during startup; the log above is from demo/data/gateway.log"
    fi
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$GW_HTTP_PORT/healthz" 2>/dev/null; then
        healthy=1
        break
    fi
    sleep 0.1
done
if [ "$healthy" -ne 1 ]; then
    tail -n 20 "$LOG" >&2 || true
    gh_die "the gateway did not answer http://127.0.0.1:$GW_HTTP_PORT/healthz within 30 s"
fi

# --- 6. prove the printed lines work ------------------------------------------------------------
AGENT="host=127.0.0.1 port=$GW_PORT user=demo-agent password=$TOKEN"
for db in "$DEMO_DB" prod; do
    if ! count="$("$PG_BIN/psql" -X -At "$AGENT dbname=$db" -c 'SELECT count(*) FROM customers' 2>&1)"; then
        printf '%s\n' "$count" >&2
        tail -n 20 "$LOG" >&2 || true
        gh_die "psql through the gateway to environment $db failed"
    fi
done

HTTP="http://127.0.0.1:$GW_HTTP_PORT"
# The tour, as a person pastes it: each command line starts with two spaces, each step with
# "  # N." (tests/tests/setup_tour.rs reads it that way and runs it).
cat <<EOF

Gatehouse demo gateway is running (pid $GW_PID), in front of PostgreSQL 127.0.0.1:$PGPORT.
Two environments with the same $count customers and their orders: demo (development) and
prod (production, where the built-in guardrails apply). Two identities: the AI agent
demo-agent (token in demo/data/demo-agent.token) and the local user admin, password
$ADMIN_PASSWORD (in demo/data/admin-password).

The tour: paste these lines into a bash shell, in order.

  export PATH="$BIN_DIR:\$PATH"
  AGENT="host=127.0.0.1 port=$GW_PORT user=demo-agent password=\$(cat $TOKEN_FILE)"
  gatehouse login --gateway $HTTP --user admin < $ADMIN_PASSWORD_FILE

  # 1. Masking: the agent reads customers in production; names, emails and phones come back masked.
  psql "\$AGENT dbname=prod" -c 'SELECT full_name, email, phone, city FROM customers ORDER BY id LIMIT 3'

  # 2. Approval: the agent's DELETE in production is held, and a NOTICE names the approval and
  #    the command that approves it. The & keeps it waiting in the background (up to 120 s).
  psql "\$AGENT dbname=prod" -c "DELETE FROM orders WHERE status = 'refunded'" &

  # 3. Approve it as admin: paste the \`gatehouse approve apr_...\` line from the NOTICE (or find
  #    the id with \`gatehouse approvals --pending\`). The held DELETE then runs and says DELETE n.
  gatehouse approve apr_...

  # 4. Guardrail: DROP TABLE in production is refused, and the error names the rule.
  psql "\$AGENT dbname=prod" -c 'DROP TABLE customers'

  # 5. Audit: all of the above, with the agent's identity and the admin's approval.
  gatehouse audit --env prod

In development the same agent is not held: psql "\$AGENT dbname=$DEMO_DB" runs writes at once.
Two terminals instead of one: run step 2 without the & in one, steps 3 to 5 in the other.

Web console: $HTTP/  (sign in as admin: Approvals, Audit, Rules with a dry run, Masking)
HTTP API: $HTTP/api/v1/openapi.json    gateway log: demo/data/gateway.log
Stop the gateway:     kill \$(cat $PIDFILE)
Stop PostgreSQL:      pg_ctlcluster $PG_CLUSTER_VERSION $PG_CLUSTER_NAME stop
EOF
