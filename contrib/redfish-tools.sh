#!/bin/sh
# Sets up the Redfish test tools and prints the virtualenv's path:
#   - target/redfish-venv: a virtualenv with exactly the packages of
#     contrib/redfish-requirements.txt (sushy, DMTF's service, interop and
#     protocol validators, redfishtool), installed with hash checking;
#   - target/redfish-schemas: the DSP8010 CSDL schemas from
#     fixtures/redfish/, unpacked for the service validator, which would
#     otherwise download them from dmtf.org.
# Idempotent: each part is redone only when its input changed (a stamp file
# holds the checksum it was made from). Works on a fresh Debian 12: installs
# python3-venv through apt when `python3 -m venv` is missing (as root, or
# through sudo). Set PYTHON to use another interpreter than python3.
# Everything but the last line goes to standard error, so a caller can do
#   venv=$(contrib/redfish-tools.sh)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-python3}
venv=target/redfish-venv
schemas=target/redfish-schemas
reqs=contrib/redfish-requirements.txt
csdl=fixtures/redfish/DMTF-csdl-2025.4.tar.xz

say() { echo "redfish-tools: $*" >&2; }

sum() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

apt_install() {
    say "installing $*"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@" >&2
}

mkdir -p target

# The virtualenv. Its stamp covers the requirements and the interpreter.
command -v "$python" >/dev/null 2>&1 || apt_install python3 python3-venv
want_venv="$(sum "$reqs") $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$want_venv" ] \
    && "$venv/bin/python" -c 'import sushy, redfish_service_validator, redfish_interop_validator, redfish_protocol_validator' 2>/dev/null; then
    say "reusing $venv"
else
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        # Debian ships venv's ensurepip apart, in python3-venv.
        apt_install python3-venv
    fi
    say "creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # The hashes are PyPI's: a machine-wide find-links directory could offer
    # other builds of the same versions, which would fail the check.
    PIP_FIND_LINKS="" PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$venv/bin/python" -m pip install --quiet --require-hashes --no-deps \
        --only-binary=:all: -r "$reqs" >&2
    "$venv/bin/python" -m pip check >&2
    echo "$want_venv" >"$venv/.stamp"
fi

# The schemas, unpacked flat as the service validator wants them.
want_schemas=$(sum "$csdl")
if [ -f "$schemas/ServiceRoot_v1.xml" ] && [ "$(cat "$schemas/.stamp" 2>/dev/null)" = "$want_schemas" ]; then
    say "reusing $schemas"
else
    say "unpacking $csdl into $schemas"
    rm -rf "$schemas"
    mkdir -p "$schemas"
    tar -xJf "$csdl" -C "$schemas" --strip-components=1
    echo "$want_schemas" >"$schemas/.stamp"
fi

echo "$root/$venv"
