#!/usr/bin/env bash
# The one test command: installs what is missing (system packages, the pinned OpenStack CLI venv), then
# builds and runs every test of the workspace, including the black-box acceptance tests in tests/.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test identity_http`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh

ensure_system_packages
ensure_venv .venv
export STRATA_VENV="$PWD/.venv"

log "cargo test --workspace --locked $*"
exec cargo test --workspace --locked "$@"
