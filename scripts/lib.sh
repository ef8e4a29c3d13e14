# shellcheck shell=bash
# Helpers shared by scripts/*.sh and bench/*.sh. Source it; it defines functions and a few
# variables and changes nothing else.

GH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

gh_log() { printf '%s: %s\n' "${GH_SCRIPT:-gatehouse}" "$*" >&2; }
gh_die() { printf '%s: error: %s\n' "${GH_SCRIPT:-gatehouse}" "$*" >&2; exit 1; }

# rustup installs cargo into ~/.cargo/bin, which a non-login shell (CI, cron, sudo) may not have
# on PATH. Put it there when it is missing, so `cargo` works without the user's profile.
gh_cargo_path() {
    if ! command -v cargo >/dev/null 2>&1; then
        local d
        for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/cargo/bin; do
            if [ -x "$d/cargo" ]; then
                PATH="$d:$PATH"
                export PATH
                break
            fi
        done
    fi
    command -v cargo >/dev/null 2>&1
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
gh_free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# True when something accepts TCP connections on 127.0.0.1:$1.
gh_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A random string of $1 characters from [A-Za-z0-9] (default 32).
gh_random() {
    local n="${1:-32}" out=""
    while [ "${#out}" -lt "$n" ]; do
        out+="$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    done
    printf '%s' "${out:0:$n}"
}

# Runs a command as the `postgres` OS user (PostgreSQL refuses to run as root). Without root,
# runs it as the current user. Runs from / so a cwd the postgres user cannot read does not
# matter: pass absolute paths.
gh_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- "$@")
    else
        "$@"
    fi
}

# Waits up to $1 seconds for the HTTP URL $2 to answer 200; false if it never does.
gh_wait_http() {
    local timeout="$1" url="$2" i
    for ((i = 0; i < timeout * 10; i++)); do
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Builds the web console (ui/ → ui/dist, `npm run build`) when it is missing or older than its
# sources; quiet when it is current. Needs node_modules (scripts/install-deps.sh).
gh_build_console() {
    local stamp="$GH_REPO/ui/dist/index.html" newer
    if [ -e "$stamp" ]; then
        newer="$(find "$GH_REPO/ui/src" "$GH_REPO/ui/index.html" "$GH_REPO/ui/vite.config.ts" \
            "$GH_REPO/package-lock.json" -newer "$stamp" -print -quit 2>/dev/null)"
        [ -z "$newer" ] && return 0
    fi
    gh_log "building the web console (npm run build → ui/dist)"
    (cd "$GH_REPO" && npm run --silent build >/dev/null) || gh_die "building the web console failed: run \`npm run build\` to see why"
    [ -e "$stamp" ] || gh_die "npm run build did not produce $stamp"
}
