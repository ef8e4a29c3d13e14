#!/usr/bin/env bash
# Installs what Gatehouse needs to build, test, run its demo and its benchmark on Debian 12:
# PostgreSQL 15 (server and client), PgBouncer, a C toolchain, curl, util-linux's setpriv,
# a Python venv at .venv with psycopg and the MCP SDK (used by the end-to-end tests as real clients),
# Chromium, node_modules from package-lock.json (the web UI's build tools, the SSO tests' OpenID
# provider and browser driver; Node.js 20+ must already be installed), the built web console
# (ui/dist, rebuilt when its sources change), and for the desktop app WebKitGTK's development
# packages, Xvfb, WebKitWebDriver and `tauri-driver` (built from crates.io into .tools/bin, not
# onto the user's PATH).
#
# Idempotent and quiet: when everything is present it prints nothing and changes nothing.
# Rust cannot be downloaded on every machine we run on, so a missing `cargo` is an error with
# a message, not an install.
set -euo pipefail
GH_SCRIPT=install-deps
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PSYCOPG_SPEC='psycopg[binary]==3.2.*'
MCP_SPEC='mcp==1.30.0'   # the official MCP Python SDK: the MCP server's end-to-end tests drive it
RUST_MIN=1.85   # the workspace's rust-version
SUDO=()
VENV="$GH_REPO/.venv"

APT_PACKAGES=(
    postgresql-15          # server binaries for test clusters, the demo and the benchmark
    postgresql-client-15   # psql, pgbench
    pgbouncer              # the benchmark's reference proxy
    build-essential        # cc for crates that build C (rusqlite's bundled SQLite, ring)
    pkg-config
    ca-certificates
    curl                   # health checks in scripts
    procps                 # ps, pkill-free process checks
    util-linux             # setpriv, runuser: run PostgreSQL as the postgres user
    python3
    python3-venv
    chromium               # the SSO end-to-end test drives a real browser (playwright-core)
    libpostgresql-jdbc-java  # PgJDBC, the driver of DBeaver and IntelliJ, for tests/tests/pgjdbc.rs
    openjdk-17-jdk-headless  # `java File.java` runs tests/java/PgJdbcCheck.java
    # The desktop app (src-tauri/, Tauri v2 on WebKitGTK) and its WebDriver test:
    libwebkit2gtk-4.1-dev  # the web view (pulls GTK, libsoup 3, JavaScriptCore)
    libgtk-3-dev
    libayatana-appindicator3-dev  # the tray icon
    librsvg2-dev           # SVG icons in GTK menus
    webkit2gtk-driver      # WebKitWebDriver, which tauri-driver drives
    xvfb                   # a private X server for the app in tests
    xauth
    imagemagick            # `import`: the test's screenshot of the app's window
)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_apt_packages() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
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

# node_modules from package-lock.json (Vite, Preact and Vitest for the UI; oidc-provider and
# playwright-core for the SSO and console tests).
# Node.js itself is not installed here: Debian 12's is too old for oidc-provider.
install_node_modules() {
    command -v npm >/dev/null 2>&1 ||
        gh_die "npm was not found: install Node.js 20 or newer (the SSO tests run an OpenID provider on it)"
    local stamp="$GH_REPO/node_modules/.package-lock.json"
    if [ ! -e "$stamp" ] || [ "$GH_REPO/package-lock.json" -nt "$stamp" ]; then
        gh_log "installing node_modules (npm ci)"
        (cd "$GH_REPO" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
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

install_apt_packages
check_cargo
install_venv
install_node_modules
gh_build_console
install_tauri_driver
