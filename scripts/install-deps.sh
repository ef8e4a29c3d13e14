#!/usr/bin/env bash
# Installs what Gatehouse needs on Debian 12, for one purpose at a time:
#
#   scripts/install-deps.sh run     # build and run the gateway and its demo (what setup.sh calls)
#   scripts/install-deps.sh test    # run's, plus what the tests drive (what test.sh calls)
#   scripts/install-deps.sh bench   # run's, plus PgBouncer (what bench/*.sh call)
#
# run:   PostgreSQL 15 (server and client), a C toolchain, curl, util-linux's setpriv, the npm
#        packages the web console's build needs (`npm ci --omit=dev`: Vite and Preact), and the
#        built console (ui/dist, rebuilt when its sources change).
# test:  also Chromium (the SSO and console tests), a JDK and Debian's PgJDBC, a Python venv at
#        .venv with psycopg and the MCP SDK, every npm package (Vitest, the SSO tests' OpenID
#        provider, the browser driver, node-postgres), and for the desktop app WebKitGTK's
#        development packages, Xvfb, ImageMagick, WebKitWebDriver, `tauri-driver` (crates.io) and
#        the Tauri CLI that makes the .deb (npm `@tauri-apps/cli`, a prebuilt binary in an npm
#        package) — each into the repository (.tools/bin, node_modules), not onto the user's PATH.
# bench: also PgBouncer, the benchmark's reference proxy.
#
# Idempotent and quiet: when everything is present it prints nothing and changes nothing.
# Rust and Node.js are not installed: Rust cannot be downloaded on every machine we run on, and
# Debian 12's Node.js is too old; a missing or old one is an error with a message. With
# GATEHOUSE_PREBUILT_BIN_DIR set (see setup.sh) `run` does not ask for Rust.
set -euo pipefail
GH_SCRIPT=install-deps
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE="${1:-}"
case "$MODE" in
run | test | bench) ;;
*) gh_die "usage: scripts/install-deps.sh run|test|bench (what to install for: running the demo, the tests, the benchmark)" ;;
esac

PSYCOPG_SPEC='psycopg[binary]==3.2.*'
MCP_SPEC='mcp==1.30.0'   # the official MCP Python SDK: the MCP server's end-to-end tests drive it
RUST_MIN=1.85   # the workspace's rust-version
NODE_MIN=20
SUDO=()
VENV="$GH_REPO/.venv"

# What building and running the gateway, the CLI and the demo needs.
RUN_PACKAGES=(
    postgresql-15          # the demo's database server (and test clusters, benchmarks)
    postgresql-client-15   # psql, pgbench
    build-essential        # cc for crates that build C (rusqlite's bundled SQLite, ring)
    pkg-config
    ca-certificates
    curl                   # health checks in scripts
    procps                 # ps, pkill-free process checks
    util-linux             # setpriv, runuser: run PostgreSQL as the postgres user
)
# What the tests drive, on top of RUN_PACKAGES.
TEST_PACKAGES=(
    python3                # the venv below; free ports in scripts
    python3-venv
    chromium               # the SSO and console end-to-end tests drive a real browser (playwright-core)
    libpostgresql-jdbc-java  # PgJDBC, the driver of DBeaver and IntelliJ, for tests/tests/pgjdbc.rs
    openjdk-17-jdk-headless  # `java File.java` runs tests/java/PgJdbcCheck.java
    # The desktop app (src-tauri/, Tauri v2 on WebKitGTK), its .deb and its WebDriver test:
    libwebkit2gtk-4.1-dev  # the web view (pulls GTK, libsoup 3, JavaScriptCore)
    libgtk-3-dev
    libayatana-appindicator3-dev  # the tray icon
    librsvg2-dev           # SVG icons in GTK menus
    webkit2gtk-driver      # WebKitWebDriver, which tauri-driver drives
    xvfb                   # a private X server for the app in tests
    xauth
    imagemagick            # `import`: the test's screenshot of the app's window
    dbus-daemon            # a private session bus for the app's notifications in tests
)
BENCH_PACKAGES=(
    python3                # free ports in bench/lib.sh
    pgbouncer              # the benchmark's reference proxy
)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_apt_packages() {
    local missing=() p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            gh_die "missing Debian packages (${missing[*]}) and not root; run as root or: apt-get install ${missing[*]}"
        SUDO=(sudo)
    fi
    gh_log "installing Debian packages: ${missing[*]}"
    # Packages must not start their services (a PgBouncer on 6432, a cluster on 5432): our
    # scripts start exactly what they need. policy-rc.d is Debian's switch for that; only
    # add one if the machine has none, and always take ours away again.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        added_policy=1
        trap '"${SUDO[@]}" rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$added_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
        trap - EXIT
    fi
    for p in "${missing[@]}"; do
        installed "$p" || gh_die "Debian package $p did not install"
    done
}

check_cargo() {
    gh_cargo_path || gh_die "cargo was not found (looked on PATH and in ~/.cargo/bin).
Gatehouse needs Rust $RUST_MIN or newer; this script cannot download a toolchain.
Install it with rustup (https://rustup.rs) or your distribution, then run this again."
    local v
    v="$(rustc --version 2>/dev/null | awk '{print $2}')"
    if [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$RUST_MIN" "$v" | sort -V | head -n1)" != "$RUST_MIN" ]; then
        gh_die "rustc $v is too old: Gatehouse needs Rust $RUST_MIN or newer (rustup update)"
    fi
}

check_node() {
    command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 ||
        gh_die "Node.js was not found: install Node.js $NODE_MIN or newer (Debian 12's is too old), e.g. from https://nodejs.org or NodeSource"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    [ "$major" -ge "$NODE_MIN" ] ||
        gh_die "Node.js $(node --version) is too old: the web console's build needs $NODE_MIN or newer"
}

# A python3 that can make a venv with pip: the one on PATH (e.g. pyenv) if it can, else Debian's.
base_python() {
    local py
    for py in "$(command -v python3 || true)" /usr/bin/python3; do
        [ -n "$py" ] && [ -x "$py" ] || continue
        if "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            printf '%s' "$py"
            return 0
        fi
    done
    return 1
}

psycopg_ok() {
    "$VENV/bin/python" - >/dev/null 2>&1 <<'EOF'
import psycopg
assert psycopg.__version__.startswith("3.2."), psycopg.__version__
assert psycopg.pq.__impl__ in ("binary", "c"), psycopg.pq.__impl__
EOF
}

mcp_ok() {
    "$VENV/bin/python" - >/dev/null 2>&1 <<'EOF'
from importlib.metadata import version
from mcp.client.streamable_http import streamablehttp_client
assert version("mcp") == "1.30.0", version("mcp")
EOF
}

install_venv() {
    # A venv whose interpreter is gone (its base Python was removed or moved) is rebuilt.
    if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        gh_log "recreating $VENV: its interpreter no longer runs"
        rm -rf "$VENV"
    fi
    if [ ! -e "$VENV/bin/python" ]; then
        local py
        py="$(base_python)" || gh_die "no python3 with the venv module (is python3-venv installed?)"
        gh_log "creating the Python venv $VENV (from $py)"
        "$py" -m venv "$VENV"
    fi
    if ! psycopg_ok; then
        gh_log "installing $PSYCOPG_SPEC into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PSYCOPG_SPEC"
        psycopg_ok || gh_die "psycopg is still not importable from $VENV/bin/python"
    fi
    if ! mcp_ok; then
        gh_log "installing $MCP_SPEC into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$MCP_SPEC"
        mcp_ok || gh_die "the MCP SDK is still not importable from $VENV/bin/python"
    fi
}

# node_modules from package-lock.json. `run` needs only the console's build (the `dependencies`
# of package.json: Vite, Preact); `test` needs the `devDependencies` too (Vitest, oidc-provider,
# playwright-core, node-postgres, the Tauri CLI). A stamp in node_modules records the lock file's
# hash and which set is installed, so a fresh checkout (new mtimes, same lock) installs nothing.
install_node_modules() { # $1: run|test
    local want="$1" nm="$GH_REPO/node_modules" lock_hash have=""
    lock_hash="$(sha256sum "$GH_REPO/package-lock.json" | cut -d' ' -f1)"
    local stamp="$nm/.gatehouse-installed"
    [ -r "$stamp" ] && have="$(cat "$stamp")"
    case "$have" in
    "$lock_hash test") return 0 ;;
    "$lock_hash run") [ "$want" = run ] && return 0 ;;
    esac
    if [ -L "$nm" ]; then
        # `npm ci` would empty the directory the link points to, maybe another checkout's.
        gh_die "node_modules is a link to $(readlink -f "$nm") whose packages are not the ones package-lock.json asks for ($want); run \`scripts/install-deps.sh $want\` there, or remove the link"
    fi
    local omit=()
    [ "$want" = run ] && omit=(--omit=dev)
    gh_log "installing node_modules (npm ci${omit[*]:+ ${omit[*]}})"
    (cd "$GH_REPO" && npm ci "${omit[@]}" --no-audit --no-fund --loglevel=error >/dev/null)
    printf '%s %s\n' "$lock_hash" "$want" >"$stamp"
}

# tauri-driver (crates.io), the WebDriver front the desktop test talks to, in a repo-local root
# so it is found without touching the user's ~/.cargo. Pinned: its protocol handling is what
# the test was written against.
TAURI_DRIVER_VERSION=2.1.0
install_tauri_driver() {
    local root="$GH_REPO/.tools" bin="$GH_REPO/.tools/bin/tauri-driver"
    if [ -x "$bin" ] && [ -e "$root/.tauri-driver-$TAURI_DRIVER_VERSION" ]; then
        return 0
    fi
    gh_log "installing tauri-driver $TAURI_DRIVER_VERSION into $root (cargo install)"
    cargo install --quiet --locked --version "$TAURI_DRIVER_VERSION" --root "$root" tauri-driver
    [ -x "$bin" ] || gh_die "tauri-driver did not install into $root/bin"
    touch "$root/.tauri-driver-$TAURI_DRIVER_VERSION"
}

install_apt_packages "${RUN_PACKAGES[@]}"
case "$MODE" in
test) install_apt_packages "${TEST_PACKAGES[@]}" ;;
bench) install_apt_packages "${BENCH_PACKAGES[@]}" ;;
esac
if [ "$MODE" != run ] || [ -z "${GATEHOUSE_PREBUILT_BIN_DIR:-}" ]; then
    check_cargo
fi
check_node
if [ "$MODE" = test ]; then
    install_venv
    install_node_modules test
    install_tauri_driver
else
    install_node_modules run
fi
gh_build_console
