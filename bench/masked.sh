#!/usr/bin/env bash
# Masked rows: one wide result of about 1 GB (a table of fake people with several sensitive
# columns) read through the release gateway with masking on (no configuration), against the same
# result through PgBouncer, and directly as the baseline. The client is psql with FETCH_COUNT, so
# the result streams through a cursor (DECLARE … FETCH) and no side buffers it whole. Reports per
# target the median time and throughput over the rounds, gateway/pgbouncer, and the gateway's
# peak resident memory (VmHWM) over the whole run.
#
#   bench/masked.sh                  # ~1 GB, 3 rounds
#   ROWS=200000 ROUNDS=1 bench/masked.sh   # a quick look (~100 MB)
#
# Environment: ROWS (2000000 ≈ 1 GB of result text), ROUNDS (3), FETCH (rows per FETCH, 10000),
# MASKING (on; `off` measures the same result through the gateway with `[masking] enabled = false`),
# OUT (also write the table here), KEEP_TMP=1, NICE, GATEHOUSE_BIN (benchmark this binary instead
# of building ${CARGO_TARGET_DIR:-target}/release/gatehouse-server).
set -euo pipefail
GH_SCRIPT=bench-masked
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GH_REPO"

ROWS="${ROWS:-2000000}"
ROUNDS="${ROUNDS:-3}"
FETCH="${FETCH:-10000}"
MASKING="${MASKING:-on}"
OUT="${OUT:-}"
NICE="${NICE:-0}"
PGBOUNCER="${PGBOUNCER:-/usr/sbin/pgbouncer}"
TARGET_DIR="${CARGO_TARGET_DIR:-$GH_REPO/target}"
BIN="${GATEHOUSE_BIN:-$TARGET_DIR/release/gatehouse-server}"
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

"$GH_REPO/scripts/install-deps.sh" bench
if [ -z "${GATEHOUSE_BIN:-}" ]; then
    gh_cargo_path || gh_die "cargo is not on PATH"
    gh_log "building the release gateway"
    cargo build --release -q -p gatehouse-server
fi
[ -x "$BIN" ] || gh_die "no gateway binary at $BIN"
bench_renice
bench_setup gatehouse-bench-masked
bench_start_postgres 1GB

gh_log "loading $ROWS fake people"
# Several sensitive columns (name, email, phone, SSN, Luhn-valid card, address, free text with an
# email inside) next to safe ones (id, amount, timestamp, status).
PGPASSWORD="$DB_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bench -d bench <<SQL
CREATE TABLE people_wide (
    id bigint PRIMARY KEY,
    full_name text, email text, phone text, ssn text, card_number text,
    street_address text, notes text,
    amount numeric(12,2), created_at timestamptz, status text, filler text
);
INSERT INTO people_wide
SELECT i,
       'Person ' || i || ' Example',
       'person' || i || '@example.com',
       '+1 (415) 555-' || lpad((i % 10000)::text, 4, '0'),
       lpad((100 + i % 799)::text, 3, '0') || '-' || lpad((10 + i % 89)::text, 2, '0') || '-' || lpad((1000 + i % 8999)::text, 4, '0'),
       '4111 1111 1111 1111',
       i || ' Long Street Name Avenue, Springfield, 12345',
       'Customer called about order ' || i || ', reach them at person' || i || '@example.com or the phone on file.',
       (i % 100000) / 100.0,
       timestamptz '2024-01-01' + i * interval '1 second',
       CASE WHEN i % 3 = 0 THEN 'shipped' ELSE 'pending' END,
       repeat('x', 200)
FROM generate_series(1, $ROWS) AS i;
VACUUM ANALYZE people_wide;
SQL

bench_start_pgbouncer "$PGBOUNCER" pgbouncer "$PGB_PORT" "$PG_PORT" scram-sha-256 bench "$SCRAM_SECRET"
masking_toml=""
if [ "$MASKING" = off ]; then
    masking_toml="$(printf '\n[masking]\nenabled = false')"
fi
bench_start_gateway "$BIN" "$masking_toml"

export PGSSLMODE=disable
QUERY="SELECT * FROM people_wide"
target_env() { # port user password
    case "$1" in
    direct) echo "$PG_PORT bench $DB_PASSWORD" ;;
    pgbouncer) echo "$PGB_PORT bench $DB_PASSWORD" ;;
    gateway) echo "$GW_PORT bench-agent $TOKEN" ;;
    esac
}
# Streams the whole result through a cursor; prints "seconds bytes".
run_once() {
    local port user pw start end bytes
    read -r port user pw <<<"$(target_env "$1")"
    start="$(date +%s.%N)"
    bytes="$(PGPASSWORD="$pw" psql -X -At -v ON_ERROR_STOP=1 -v FETCH_COUNT="$FETCH" \
        -h 127.0.0.1 -p "$port" -U "$user" -d bench -c "$QUERY" | tee "$TMP/runs/$1.sample" | wc -c)"
    end="$(date +%s.%N)"
    echo "$(echo "$end - $start" | bc) $bytes"
}

# Check the gateway really masks (and the sample of what it sends), then warm every path.
for t in direct pgbouncer gateway; do
    read -r port user pw <<<"$(target_env "$t")"
    PGPASSWORD="$pw" psql -X -At -h 127.0.0.1 -p "$port" -U "$user" -d bench \
        -c "SELECT * FROM people_wide WHERE id <= 2" >"$TMP/runs/check-$t.txt"
done
grep -q 'person1@example.com' "$TMP/runs/check-direct.txt" || gh_die "the direct sample is not what was loaded"
if [ "$MASKING" != off ] && grep -q 'person1@example.com\|4111 1111 1111 1111' "$TMP/runs/check-gateway.txt"; then
    gh_die "the gateway did not mask: $(cat "$TMP/runs/check-gateway.txt")"
fi
gh_log "through the gateway: $(head -n 1 "$TMP/runs/check-gateway.txt")"

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
targets=(direct pgbouncer gateway)
for round in $(seq 1 "$ROUNDS"); do
    for i in 0 1 2; do
        t="${targets[$(((i + round) % 3))]}"
        gh_log "round $round: $t"
        read -r secs bytes <<<"$(run_once "$t")"
        printf '%s\t%s\t%s\t%s\n' "$t" "$round" "$secs" "$bytes" >>"$RESULTS"
    done
done
PEAK_KB="$(awk '/^VmHWM/ { print $2 }' "/proc/$GW_PID/status")"
LOAD_AT_END="$(cut -d' ' -f1-3 /proc/loadavg)"
commit="${GATEHOUSE_BIN:-$(git -C "$GH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)}"

TABLE="$TMP/table.md"
python3 - "$RESULTS" "$PEAK_KB" "$ROWS" "$commit" "$LOAD_AT_START" "$LOAD_AT_END" "$MASKING" >"$TABLE" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
sizes = {}
for line in open(sys.argv[1]):
    t, _r, secs, nbytes = line.split("\t")
    rows[t].append(float(secs))
    sizes[t] = int(nbytes)
peak_mb = int(sys.argv[2]) / 1024
base = sizes["direct"]
print(f"`bench/masked.sh`: `SELECT * FROM people_wide` ({sys.argv[3]} rows, {base / 1e9:.2f} GB of result text), "
      f"psql with FETCH_COUNT, gateway at `{sys.argv[4]}` with masking {sys.argv[7]}, load {sys.argv[5]} → {sys.argv[6]}")
print()
print("| target | median s | MB/s (of the direct result's size) | output bytes | runs (s) |")
print("| --- | --- | --- | --- | --- |")
med = {}
for t in ["direct", "pgbouncer", "gateway"]:
    m = statistics.median(rows[t])
    med[t] = m
    print(f"| {t} | {m:.2f} | {base / m / 1e6:.1f} | {sizes[t]} | {', '.join(f'{x:.2f}' for x in rows[t])} |")
ratio = med["pgbouncer"] / med["gateway"]
print()
print(f"gateway throughput / pgbouncer: **{ratio:.2f}** (target ≥ 0.80); "
      f"gateway peak RSS (VmHWM, whole run): **{peak_mb:.1f} MB** (target < 100 MB)")
EOF
cat "$TABLE"
[ -n "$OUT" ] && cp "$TABLE" "$OUT"
exit 0
