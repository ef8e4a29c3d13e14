#!/usr/bin/env bash
# THE test command: installs what testing needs (scripts/install-deps.sh test), builds every
# binary and the desktop app's .deb, runs every test.
# Exits non-zero on any failure. CI runs it through .ci/run.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh NAME [-- --nocapture]   # extra arguments go to `cargo test --workspace`
set -euo pipefail
GH_SCRIPT=test
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GH_REPO"

"$GH_REPO/scripts/install-deps.sh" test
gh_cargo_path || gh_die "cargo is not on PATH"

# The end-to-end tests drive the gateway with real clients; psycopg lives in the venv.
export GATEHOUSE_PYTHON="$GH_REPO/.venv/bin/python"

# The UI's component tests (Vitest); install-deps.sh has built ui/dist for the console tests
# and for the desktop app, which embeds it.
gh_log "npm test"
npm test --silent

# The desktop app is built on its own, once per run: in one build with the rest, Tauri's
# dependencies would change the features of crates the gateway shares with it, so the whole
# workspace would be compiled a second way. tests/tests/desktop_app.rs drives this binary.
gh_log "cargo build --workspace --exclude gatehouse-desktop --bins"
cargo build --workspace --exclude gatehouse-desktop --bins
gh_log "cargo build -p gatehouse-desktop"
cargo build -p gatehouse-desktop
# The desktop app as people install it: the Tauri CLI (npm @tauri-apps/cli, installed by
# install-deps.sh) packs this build into target/debug/bundle/deb/*.deb, which
# tests/tests/desktop_deb.rs installs with apt-get. --no-binary-patching leaves the binary the
# other tests run as cargo built it.
gh_log "tauri bundle --debug --bundles deb"
npm run --silent tauri -- bundle --debug --bundles deb --no-sign --no-binary-patching >/dev/null
gh_log "cargo test --workspace --exclude gatehouse-desktop"
cargo test --workspace --exclude gatehouse-desktop --no-fail-fast "$@"
# The suites whose state lives in the store once more, each gateway on a PostgreSQL store of
# its own (`[store] url`), as replicas run it: the same tests must hold on either store.
if [ "$#" -eq 0 ]; then
    gh_log "cargo test (identity, groups, auth, approvals, policy API, audit, exemption requests) on the PostgreSQL store"
    GATEHOUSE_TEST_STORE=postgres cargo test -p gatehouse-tests --no-fail-fast \
        --test identity --test groups --test auth --test approvals --test policy_api --test audit \
        --test masking_requests
fi
gh_log "cargo test -p gatehouse-desktop"
cargo test -p gatehouse-desktop --no-fail-fast   # its unit tests; its e2e test is in tests/
