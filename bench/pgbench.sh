#!/usr/bin/env bash
# What the gateway costs: pgbench -S (read-only, one primary-key lookup per transaction) against
# the same throwaway PostgreSQL 15 five ways: directly, through PgBouncer (session pooling,
# SCRAM), through the release Gatehouse gateway (service-account token) without and with TLS,
# and through a `gatehouse connect` tunnel in front of that gateway (pgbench -> tunnel on
# loopback, no password -> TLS -> gateway). Runs interleave the targets round by round; the table
# shows median tps and mean latency per target, and the tunnel against the gateway both ways.
#
#   bench/pgbench.sh                       # 3 modes x 2 client counts x 5 targets x 3 rounds x 10 s
#   DURATION=5 ROUNDS=1 bench/pgbench.sh   # a quick look
#
# Environment: DURATION (s per run, 10), ROUNDS (3), SCALE (pgbench -i -s, 10),
# MODES ("simple extended prepared"), CLIENTS ("1 8"), TARGETS ("direct pgbouncer gateway gateway-tls tunnel";
# direct must stay; pgbouncer-gateway, PgBouncer in front of the gateway, is what any extra hop
# costs, the yardstick for the tunnel's), OUT (also write the table to this file),
# KEEP_TMP=1 (keep the temp dir with logs), NICE (run everything at this niceness, e.g. -10
# on a machine that is busy with other work), GATEHOUSE_BIN / GATEHOUSE_CLI_BIN (benchmark these
# gateway and CLI binaries instead of building them into ${CARGO_TARGET_DIR:-target}/release),
# STORE=postgres (the gateway's store and audit trail in a PostgreSQL database, as replicas
# sharing a store run; its server is the benchmark's own cluster, whose CPU is not the gateway's),
# GATEHOUSE_BIN_B with the target gateway-b (a second gateway from another build, configured the
# same, run round by round beside the first: an A/B whose rounds share the machine's moods).
# Everything started is stopped on exit.
set -euo pipefail
GH_SCRIPT=bench
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GH_REPO"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
SCALE="${SCALE:-10}"
MODES="${MODES:-simple extended prepared}"
CLIENTS="${CLIENTS:-1 8}"
OUT="${OUT:-}"
NICE="${NICE:-0}"
PGBOUNCER="${PGBOUNCER:-/usr/sbin/pgbouncer}"
TARGETS="${TARGETS:-direct pgbouncer gateway gateway-tls tunnel}"
TARGET_DIR="${CARGO_TARGET_DIR:-$GH_REPO/target}"
BIN="${GATEHOUSE_BIN:-$TARGET_DIR/release/gatehouse-server}"
CLI="${GATEHOUSE_CLI_BIN:-$TARGET_DIR/release/gatehouse}"
NPROC="$(nproc)"
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

"$GH_REPO/scripts/install-deps.sh" bench
case " $TARGETS " in *" direct "*) ;; *) gh_die "TARGETS must include direct (the baseline)" ;; esac
if [ -z "${GATEHOUSE_BIN:-}" ] || [ -z "${GATEHOUSE_CLI_BIN:-}" ]; then
    gh_cargo_path || gh_die "cargo is not on PATH"
    gh_log "building the release gateway and CLI"
    cargo build --release -q -p gatehouse-server -p gatehouse-client
fi
[ -x "$BIN" ] || gh_die "no gateway binary at $BIN"
[ -x "$CLI" ] || gh_die "no gatehouse CLI binary at $CLI"
bench_renice
bench_setup gatehouse-bench
mkdir -p "$TMP/cli"
bench_start_postgres 512MB
bench_start_pgbouncer "$PGBOUNCER" pgbouncer "$PGB_PORT" "$PG_PORT" scram-sha-256 bench "$SCRAM_SECRET"
if [[ " $TARGETS " == *" gateway-b "* ]]; then
    [ -x "${GATEHOUSE_BIN_B:-}" ] || gh_die "the target gateway-b needs GATEHOUSE_BIN_B (a gateway binary)"
    GW_A_PORT="$GW_PORT" GW_A_HTTP_PORT="$GW_HTTP_PORT"
    GW_PORT="$(gh_free_port)" GW_HTTP_PORT="$(gh_free_port)"
    GATEHOUSE_WORKERS="${GATEHOUSE_WORKERS_B:-${GATEHOUSE_WORKERS:-}}" GW_DIR="$TMP/gateway-b" GW_STORE_DB=gatehouse_store_b \
        bench_start_gateway "$GATEHOUSE_BIN_B"
    GWB_PID="$GW_PID" GWB_PORT="$GW_PORT" TOKEN_B="$TOKEN"
    GW_PORT="$GW_A_PORT" GW_HTTP_PORT="$GW_A_HTTP_PORT"
fi
bench_start_gateway "$BIN"
if [[ " $TARGETS " == *" pgbouncer-gateway "* ]]; then
    # The userlist holds the gateway token in plain text: PgBouncer must send it on as a password.
    bench_start_pgbouncer "$PGBOUNCER" pgbouncer-gateway "$PGB2_PORT" "$GW_PORT" plain bench-agent "$TOKEN"
fi

# --- the tunnel ------------------------------------------------------------------------------------
# Its own config dir and the file session store, so the benchmark never touches a keychain.
TUNNEL_PORT=""
if [[ " $TARGETS " == *" tunnel "* ]]; then
    gh_log "starting a gatehouse tunnel to the gateway"
    export GATEHOUSE_CONFIG_DIR="$TMP/cli" GATEHOUSE_SESSION_STORE=file
    printf '%s\n' "$TOKEN" | "$CLI" login --gateway "http://127.0.0.1:$GW_HTTP_PORT" \
        --postgres "127.0.0.1:$GW_PORT" --token - >"$TMP/cli/login.log" 2>&1 ||
        { cat "$TMP/cli/login.log" >&2; gh_die "gatehouse login failed"; }
    "$CLI" --json connect bench >"$TMP/cli/tunnel.json" 2>"$TMP/cli/tunnel.log" </dev/null &
    TUNNEL_PID=$!
    for _ in $(seq 1 100); do
        TUNNEL_PORT="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["port"])' \
            "$TMP/cli/tunnel.json" 2>/dev/null || true)"
        [ -n "$TUNNEL_PORT" ] && break
        sleep 0.1
    done
    [ -n "$TUNNEL_PORT" ] || { cat "$TMP/cli/tunnel.log" >&2; gh_die "the tunnel did not start"; }
fi

# --- targets -----------------------------------------------------------------------------------------
# TLS is off from pgbench to direct, pgbouncer and gateway (libpq would otherwise negotiate it
# with the gateway only), so those differ only in what sits between pgbench and PostgreSQL.
# gateway-tls is the gateway as a client off this host must reach it (the gateway takes a token
# without TLS on loopback only), and the fair baseline for the tunnel, whose hop to the gateway is
# always TLS.
target_env() { # $1: target; prints `port user password dbname sslmode`
    case "$1" in
    direct) echo "$PG_PORT bench $DB_PASSWORD bench disable" ;;
    pgbouncer) echo "$PGB_PORT bench $DB_PASSWORD bench disable" ;;
    gateway) echo "$GW_PORT bench-agent $TOKEN bench disable" ;;
    gateway-tls) echo "$GW_PORT bench-agent $TOKEN bench require" ;;
    gateway-b) echo "$GWB_PORT bench-agent $TOKEN_B bench disable" ;;
    tunnel) echo "$TUNNEL_PORT whoever no-password-needed bench disable" ;;
    pgbouncer-gateway) echo "$PGB2_PORT bench-agent $TOKEN bench disable" ;;
    *) gh_die "unknown target $1 (direct, pgbouncer, gateway, gateway-b, gateway-tls, tunnel, pgbouncer-gateway)" ;;
    esac
}
# The proxy processes behind a target, whose CPU time per transaction the table reports: on a
# shared machine that figure moves far less with other load than tps does.
proxy_pids() { # $1: target
    case "$1" in
    pgbouncer) cat "$TMP/pgbouncer/pgbouncer.pid" ;;
    gateway | gateway-tls) echo "$GW_PID" ;;
    gateway-b) echo "$GWB_PID" ;;
    pgbouncer-gateway) echo "$(cat "$TMP/pgbouncer-gateway/pgbouncer.pid") $GW_PID" ;;
    tunnel) echo "$TUNNEL_PID $GW_PID" ;;
    esac
}
cpu_ticks() { # $@: pids; prints their user+system clock ticks so far (all threads)
    local total=0 pid
    for pid in "$@"; do
        # Fields after the parenthesised command name: utime is the 12th, stime the 13th.
        total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}
# The gateway's ticks by thread: its session workers, its audit writer, and the rest (the HTTP
# runtime, catalog reads), so a change shows where it moved the cost.
thread_ticks() { # $1: the gateway's pid; prints `workers audit other` clock ticks so far
    local d name ticks w=0 a=0 o=0
    for d in /proc/"$1"/task/*; do
        name="$(cat "$d/comm" 2>/dev/null)" || continue
        ticks="$(sed 's/^.*) //' "$d/stat" 2>/dev/null | awk '{ print $12 + $13 }')" || continue
        [ -n "$ticks" ] || continue
        case "$name" in
        gatehouse-worke*) w=$((w + ticks)) ;;
        gatehouse-audit) a=$((a + ticks)) ;;
        *) o=$((o + ticks)) ;;
        esac
    done
    echo "$w $a $o"
}
CLK_TCK="$(getconf CLK_TCK)"
run_pgbench() { # $1: target; the rest: pgbench arguments
    local t="$1" port user pw db ssl
    shift
    read -r port user pw db ssl <<<"$(target_env "$t")"
    PGSSLMODE="$ssl" PGPASSWORD="$pw" pgbench -h 127.0.0.1 -p "$port" -U "$user" "$@" "$db"
}

gh_log "pgbench -i -s $SCALE"
run_pgbench direct -i -q -s "$SCALE" >"$TMP/runs/init.log" 2>&1 ||
    { cat "$TMP/runs/init.log" >&2; gh_die "pgbench -i failed"; }
read -r -a targets <<<"$TARGETS"
for t in "${targets[@]}"; do
    read -r port user pw db ssl <<<"$(target_env "$t")"
    n="$(PGSSLMODE="$ssl" PGPASSWORD="$pw" psql -X -At -h 127.0.0.1 -p "$port" -U "$user" -d "$db" \
        -c 'SELECT count(*) FROM pgbench_branches' 2>&1)" ||
        gh_die "cannot query through $t: $n"
    [ "$n" = "$SCALE" ] || gh_die "unexpected answer through $t: $n"
    # Warm caches and code paths the same way for every target.
    run_pgbench "$t" -n -S -T 2 -c 2 -j 1 >/dev/null 2>&1 || gh_die "warm-up through $t failed"
done

# --- the runs --------------------------------------------------------------------------------------
RESULTS="$TMP/results.tsv"
THREADS="$TMP/threads.tsv"
: >"$RESULTS"
: >"$THREADS"
failures=0
ntargets=${#targets[@]}
cell=0
total=$(($(wc -w <<<"$MODES") * $(wc -w <<<"$CLIENTS") * ROUNDS * ntargets))
done_runs=0
for mode in $MODES; do
    for clients in $CLIENTS; do
        jobs=$((clients < NPROC ? clients : NPROC))
        for round in $(seq 1 "$ROUNDS"); do
            # Rotate the order so no target always runs first (or right after another).
            for i in $(seq 0 $((ntargets - 1))); do
                t="${targets[$(((i + round + cell) % ntargets))]}"
                done_runs=$((done_runs + 1))
                log="$TMP/runs/$mode-c$clients-r$round-$t.log"
                gh_log "[$done_runs/$total] -M $mode -c $clients -j $jobs round $round: $t"
                read -r -a pids <<<"$(proxy_pids "$t")"
                before="$(cpu_ticks "${pids[@]}")"
                threads_before=""
                gw_pid=""
                case "$t" in gateway | gateway-tls) gw_pid="$GW_PID" ;; gateway-b) gw_pid="$GWB_PID" ;; esac
                [ -z "$gw_pid" ] || threads_before="$(thread_ticks "$gw_pid")"
                if run_pgbench "$t" -n -S -M "$mode" -c "$clients" -j "$jobs" -T "$DURATION" >"$log" 2>&1; then
                    tps="$(awk '/^tps = / { print $3; exit }' "$log")"
                    lat="$(awk '/^latency average = / { print $4; exit }' "$log")"
                    txns="$(awk '/^number of transactions actually processed: / { print $6; exit }' "$log")"
                else
                    tps="" lat="" txns=""
                fi
                after="$(cpu_ticks "${pids[@]}")"
                cpu=nan
                if [ "${#pids[@]}" -gt 0 ] && [ -n "$txns" ] && [ "$txns" -gt 0 ]; then
                    cpu="$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')"
                    if [ -n "$threads_before" ]; then
                        printf '%s\t%s\t%s\t%s\t%s\n' "$mode" "$clients" "$t" "$round" \
                            "$(awk -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { split(ARGV[1], b, " "); split(ARGV[2], a, " ");
                                for (i = 1; i <= 3; i++) printf "%s%.1f", (i > 1 ? "\t" : ""), (a[i] - b[i]) / hz * 1e6 / n }' \
                                "$threads_before" "$(thread_ticks "$gw_pid")")" >>"$THREADS"
                    fi
                fi
                if [ -z "$tps" ] || [ -z "$lat" ]; then
                    failures=$((failures + 1))
                    gh_log "FAILED: $t -M $mode -c $clients; last lines of its output:"
                    tail -n 5 "$log" >&2
                    tps=nan lat=nan
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$clients" "$t" "$round" "$tps" "$lat" "$cpu" >>"$RESULTS"
            done
        done
        cell=$((cell + 1))
    done
done

# --- the table ---------------------------------------------------------------------------------------
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mem="$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
if [ -n "${GATEHOUSE_BIN:-}" ]; then
    commit="$GATEHOUSE_BIN${GATEHOUSE_BIN_B:+ (gateway-b: $GATEHOUSE_BIN_B)}"
else
    commit="$(git -C "$GH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if ! git -C "$GH_REPO" diff --quiet HEAD -- server client Cargo.toml Cargo.lock 2>/dev/null; then
        commit="$commit + uncommitted changes"
    fi
fi
LOAD_AT_END="$(cut -d' ' -f1-3 /proc/loadavg)"
pgv="$("$PG_BIN/postgres" --version | awk '{ print $3 }')"
pgbv="$("$PGBOUNCER" --version | awk 'NR == 1 { print $2 }')"
TABLE="$TMP/table.md"
python3 - "$RESULTS" "$THREADS" $TARGETS >"$TABLE" <<EOF
import math, statistics, sys
from collections import defaultdict

targets = sys.argv[3:]
others = [t for t in targets if t != "direct"]
runs = defaultdict(list)
cpu = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    mode, clients, target, _round, tps, lat, cpu_us = line.rstrip("\n").split("\t")
    key = (mode, int(clients))
    if key not in order:
        order.append(key)
    runs[key + (target,)].append((float(tps), float(lat)))
    cpu[key + (target,)].append(float(cpu_us))

def stat(key):
    vals = [v for v in runs.get(key, []) if not math.isnan(v[0])]
    if not vals:
        return None, None
    return statistics.median(t for t, _ in vals), statistics.fmean(l for _, l in vals)

f = lambda v, spec: "FAIL" if v is None else format(v, spec)
ratio = lambda a, b: None if a is None or b is None else a / b
diff = lambda a, b: None if a is None or b is None else a - b
# Ratios of tps: every proxy against direct, and the tunnel against the gateway it sits in front of.
ratios = [(t, "direct") for t in others]
for hop, base in (("tunnel", "gateway"), ("tunnel", "gateway-tls"), ("pgbouncer-gateway", "gateway")):
    if hop in targets and base in targets:
        ratios.append((hop, base))

print("pgbench -S, $DURATION s per run, median of $ROUNDS interleaved round(s), scale $SCALE, niceness $NICE; "
      "TLS off from pgbench except to gateway-tls (the tunnel's hop to the gateway is TLS).")
print("Machine: $NPROC cores ($cpu), $mem, load average $LOAD_AT_START at start, $LOAD_AT_END at end; "
      "PostgreSQL $pgv, PgBouncer $pgbv, gateway at $commit, its store: ${STORE:-sqlite}.")
print()
cols = (["mode", "clients"] + [f"tps {t}" for t in targets] + [f"lat {t} ms" for t in targets]
        + [f"{a}/{b}" for a, b in ratios] + [f"+lat {t} ms" for t in others]
        + [f"cpu µs/txn {t}" for t in others])

def cpu_per_txn(key):
    vals = [v for v in cpu.get(key, []) if not math.isnan(v)]
    return statistics.median(vals) if vals else None
print("| " + " | ".join(cols) + " |")
print("|---|" + "--:|" * (len(cols) - 1))
for mode, clients in order:
    st = {t: stat((mode, clients, t)) for t in targets}
    row = ([mode, str(clients)] + [f(st[t][0], ".0f") for t in targets]
           + [f(st[t][1], ".3f") for t in targets]
           + [f(ratio(st[a][0], st[b][0]), ".2f") for a, b in ratios]
           + [f(diff(st[t][1], st["direct"][1]), "+.3f") for t in others]
           + [f(cpu_per_txn((mode, clients, t)), ".1f") for t in others])
    print("| " + " | ".join(row) + " |")

# What PgBouncer is the yardstick for (issue 22): the gateway's CPU and tps against its own.
if "pgbouncer" in targets and any(t in targets for t in ("gateway", "gateway-b", "gateway-tls")):
    gws = [t for t in ("gateway", "gateway-b", "gateway-tls") if t in targets]
    print()
    print("Against PgBouncer (CPU per transaction and tps, medians):")
    print()
    print("| mode | clients | " + " | ".join(f"cpu {g}/pgbouncer | tps {g}/pgbouncer" for g in gws) + " |")
    print("|---|" + "--:|" * (2 * len(gws) + 1))
    for mode, clients in order:
        cells = []
        for g in gws:
            cells.append(f(ratio(cpu_per_txn((mode, clients, g)), cpu_per_txn((mode, clients, "pgbouncer"))), ".2f"))
            cells.append(f(ratio(stat((mode, clients, g))[0], stat((mode, clients, "pgbouncer"))[0]), ".2f"))
        print(f"| {mode} | {clients} | " + " | ".join(cells) + " |")

# Where the gateway's CPU goes, by thread (µs per transaction, medians over the rounds).
threads = defaultdict(list)
for line in open(sys.argv[2]):
    mode, clients, target, _round, w, a, o = line.rstrip("\n").split("\t")
    threads[(mode, int(clients), target)].append((float(w), float(a), float(o)))
if threads:
    print()
    print("The gateway's CPU by thread (µs per transaction: session workers, audit writer, the rest):")
    print()
    print("| mode | clients | target | workers | audit writer | other |")
    print("|---|--:|---|--:|--:|--:|")
    for mode, clients in order:
        for t in targets:
            vals = threads.get((mode, clients, t))
            if vals:
                med = [statistics.median(v[i] for v in vals) for i in range(3)]
                print(f"| {mode} | {clients} | {t} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.1f} |")

# The spread shows how far to trust a median: a wide one means the machine was busy.
print()
print("Spread of tps over the rounds (min to max):")
print()
print("| mode | clients | " + " | ".join(targets) + " |")
print("|---|" + "--:|" * (len(targets) + 1))
def spread(key):
    vals = [t for t, _ in runs.get(key, []) if not math.isnan(t)]
    return "FAIL" if not vals else f"{min(vals):.0f} to {max(vals):.0f}"
for mode, clients in order:
    print(f"| {mode} | {clients} | " + " | ".join(spread((mode, clients, t)) for t in targets) + " |")
EOF
echo
cat "$TABLE"
if [ -n "$OUT" ]; then
    cp "$TABLE" "$OUT"
    gh_log "table written to $OUT"
fi
if [ "$failures" -gt 0 ]; then
    gh_die "$failures run(s) failed; rerun with KEEP_TMP=1 to keep the logs"
fi
