#!/usr/bin/env bash
# THE test command: installs what is missing, builds every binary, runs every test.
# Exits non-zero on any failure. CI runs it through .ci/run.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh NAME [-- --nocapture]   # extra arguments go to `cargo test --workspace`
set -euo pipefail
GH_SCRIPT=test
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GH_REPO"

"$GH_REPO/scripts/install-deps.sh"
gh_cargo_path || gh_die "cargo is not on PATH"

# The end-to-end tests drive the gateway with real clients; psycopg lives in the venv.
export GATEHOUSE_PYTHON="$GH_REPO/.venv/bin/python"

# The UI's component tests (Vitest); install-deps.sh has built ui/dist for the console tests.
gh_log "npm run test:ui"
npm run --silent test:ui

gh_log "cargo build --workspace --bins"
cargo build --workspace --bins
gh_log "cargo test --workspace"
cargo test --workspace --no-fail-fast "$@"
