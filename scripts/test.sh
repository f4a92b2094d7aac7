#!/usr/bin/env bash
# The one test command: installs what is missing (system packages, the pinned OpenStack CLI venv), then
# builds and runs every test of the workspace, including the black-box acceptance tests in tests/.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test acceptance identity_http::`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh

ensure_system_packages
ensure_venv .venv
export STRATA_VENV="$PWD/.venv"
# A clean checkout (CI) builds everything once: incremental compilation only adds work there. Set
# CARGO_INCREMENTAL=1 to keep it for edit-and-rerun loops.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Examples are not test targets: build them so they keep compiling (tests/acceptance/audit_stream_http.rs runs the
# instance_hours example's logic through `#[path]`).
log "cargo build --workspace --locked --examples"
cargo build --workspace --locked --examples

log "cargo test --workspace --locked --lib --bins --tests $*"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
cargo test --workspace --locked --lib --bins --tests "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one summary per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
exit "$status"
