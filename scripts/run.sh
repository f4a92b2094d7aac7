#!/usr/bin/env bash
# The one command that runs the cloud: installs the system packages the build needs, builds, and serves.
# Arguments go to `strata serve`; defaults (unless --config FILE is given): --data-dir ./strata-data
# --clouds-yaml ./clouds.yaml
# (and --admin-password "$STRATA_ADMIN_PASSWORD" when that is set and no --admin-password is given).
# Then: OS_CLIENT_CONFIG_FILE=./clouds.yaml OS_CLOUD=strata openstack token issue
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/common.sh

ensure_system_packages
cargo build --locked --bin strata

args=("$@")
has_arg() {
    local a
    for a in "${args[@]}"; do
        case "$a" in "$1" | "$1"=*) return 0 ;; esac
    done
    return 1
}
# A --config file's settings win over these defaults (explicit flags would override the file).
if ! has_arg --config; then
    has_arg --data-dir || args+=(--data-dir ./strata-data)
    has_arg --clouds-yaml || args+=(--clouds-yaml ./clouds.yaml)
fi
if ! has_arg --admin-password && [ -n "${STRATA_ADMIN_PASSWORD:-}" ]; then
    args+=(--admin-password "$STRATA_ADMIN_PASSWORD")
fi

exec target/debug/strata serve "${args[@]}"
