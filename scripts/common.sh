# Shared by scripts/test.sh and scripts/run.sh (sourced, not executed). Bash only.
#
# ensure_system_packages  installs the Debian packages the build needs, only those missing.
# ensure_venv             creates .venv with the pinned OpenStack CLI, only when missing or differently pinned.

STRATA_SYSTEM_PACKAGES=(librocksdb-dev libclang-dev protobuf-compiler python3-venv qemu-utils lld)
STRATA_PY_PINS=(python-openstackclient==10.5.0 openstacksdk==4.22.0 python-swiftclient==4.11.0)

log() { printf '==> %s\n' "$*" >&2; }

package_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

ensure_system_packages() {
    local missing=() p sudo=()
    for p in "${STRATA_SYSTEM_PACKAGES[@]}"; do
        package_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { log "missing packages ${missing[*]} and no sudo: install them as root"; return 1; }
        sudo=(sudo)
    fi
    log "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# The Python the venv is made from: $STRATA_PYTHON, else Debian's (python3-venv is installed for it).
venv_python() {
    if [ -n "${STRATA_PYTHON:-}" ]; then
        echo "$STRATA_PYTHON"
    elif [ -x /usr/bin/python3 ]; then
        echo /usr/bin/python3
    else
        command -v python3
    fi
}

# Prints "name==version" for every pin, as installed in the venv ("name==missing" when absent).
venv_installed_pins() {
    local venv=$1
    "$venv/bin/python" - "${STRATA_PY_PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name = pin.split("==")[0]
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name}==missing")
PY
}

ensure_venv() {
    local venv=${1:-.venv} want have
    want=$(printf '%s\n' "${STRATA_PY_PINS[@]}")
    if [ -x "$venv/bin/python" ] && [ -x "$venv/bin/openstack" ]; then
        have=$(venv_installed_pins "$venv" || true)
        if [ "$have" = "$want" ]; then
            return 0
        fi
        log "venv $venv has different versions; reinstalling the pins"
    fi
    if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$venv"
        log "creating venv $venv with $(venv_python)"
        "$(venv_python)" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${STRATA_PY_PINS[@]}"
    have=$(venv_installed_pins "$venv" || true)
    if [ "$have" != "$want" ] || ! [ -x "$venv/bin/openstack" ]; then
        log "venv $venv is not as pinned after install: got '$have', want '$want'"
        return 1
    fi
}
