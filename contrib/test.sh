#!/bin/sh
# The test command: installs what the suite needs on a fresh Debian machine
# (ipmitool, FreeIPMI, iproute2, promtool, adduser, socat, util-linux's
# script for the SOL tests, openssl, debhelper, lintian and man-db for the
# package and its manual pages; sushy and DMTF's Redfish validators in a
# pinned virtual environment), then checks formatting and lints and runs
# every test of the workspace. Run it from anywhere; as root it installs
# directly, otherwise through sudo.
set -eu
cd "$(dirname "$0")/.."

missing=""
want() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
want ipmitool ipmitool
want ipmipower freeipmi-tools
want ip iproute2
want promtool prometheus
# The package's postinst creates its user with adduser, which minimal
# Debian images lack.
want adduser adduser
want socat socat
# script(1) is in bsdutils up to Debian 12 and in bsdextrautils after.
want script "bsdutils bsdextrautils"
# The Redfish tests check which TLS versions the service refuses.
want openssl openssl
# The package is built with debhelper (which brings dpkg-dev) and checked
# with lintian; man-db renders the manual pages.
want dh debhelper
want lintian lintian
want man man-db

if [ -n "$missing" ]; then
    echo "test.sh: installing$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
fi

# The Redfish clients and DMTF validators, pinned, in target/redfish-venv.
contrib/redfish-tools.sh >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --no-fail-fast --locked
