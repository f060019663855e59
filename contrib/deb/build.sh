#!/bin/sh
# Builds novabmc's Debian package from a binary cargo has already built:
#
#   contrib/deb/build.sh [BINARY [OUTDIR]]
#
# BINARY defaults to target/release/novabmc, OUTDIR to target/deb; the
# package is OUTDIR/novabmc_VERSION_ARCH.deb, the version being what the
# binary's --version says. It holds the binary (stripped when strip is
# there), the hardened systemd unit of contrib/systemd, an example
# configuration under /etc/novabmc/ (a conffile), the README, and
# maintainer scripts that create the novabmc system user. Only dpkg-deb
# is needed: no packaging tool, no second build.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=${1:-$root/target/release/novabmc}
outdir=${2:-$root/target/deb}
here=$root/contrib/deb

[ -x "$binary" ] || { echo "build.sh: no executable $binary (cargo build --release first)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }

version=$("$binary" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "build.sh: $binary --version printed no version" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/novabmc
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
    "$pkg/etc/novabmc" "$pkg/usr/share/doc/novabmc"
install -m 0755 "$binary" "$pkg/usr/bin/novabmc"
if command -v strip >/dev/null; then
    strip --strip-debug "$pkg/usr/bin/novabmc"
else
    echo "build.sh: strip not found (binutils); packaging the binary unstripped" >&2
fi
sed 's|/usr/local/bin/novabmc|/usr/bin/novabmc|g' "$root/contrib/systemd/novabmc.service" \
    > "$pkg/lib/systemd/system/novabmc.service"
chmod 0644 "$pkg/lib/systemd/system/novabmc.service"
install -m 0640 "$here/novabmc.toml" "$pkg/etc/novabmc/novabmc.toml"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/novabmc/README.md"
cat > "$pkg/usr/share/doc/novabmc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: novabmc
Source: https://github.com/novabmc/novabmc

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
chmod 0644 "$pkg/usr/share/doc/novabmc/copyright"

size=$(du -sk "$pkg" | awk '{print $1}')
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: novabmc
Version: $version
Architecture: $arch
Maintainer: novabmc developers <novabmc@users.noreply.github.com>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, adduser
Section: net
Priority: optional
Homepage: https://github.com/novabmc/novabmc
Description: IPMI-over-LAN virtual BMC for cloud servers
 novabmc gives each virtual bare-metal node of an OpenStack cloud its own
 IPMI 2.0 / RMCP+ BMC: chassis power and boot-device commands become Nova
 calls, so Ironic and MAAS manage cloud servers as physical machines.
CONTROL
echo /etc/novabmc/novabmc.toml > "$pkg/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$pkg/DEBIAN/$script"
done

mkdir -p "$outdir"
out=$outdir/novabmc_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$out" >/dev/null
echo "$out"
