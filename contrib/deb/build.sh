#!/bin/sh
# Builds novabmc's Debian package from a binary cargo has already built:
#
#   contrib/deb/build.sh [BINARY [OUTDIR]]
#
# BINARY defaults to target/dist/novabmc (cargo build --profile dist), OUTDIR
# to target/deb; the package is OUTDIR/novabmc_VERSION_ARCH.deb (its path is
# printed), with the detached debug symbols beside it in
# novabmc-dbgsym_VERSION_ARCH.deb. The packaging is debhelper's
# (contrib/deb/debian): this script stages a source tree holding the
# binary, the manual pages and bash, zsh and fish completions the binary
# generates, the example configuration, the systemd unit and a copyright
# file generated from `cargo metadata`, then runs dpkg-buildpackage on it.
# Needs dpkg-dev, debhelper and cargo (for the metadata); compiles nothing.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=${1:-$root/target/dist/novabmc}
outdir=${2:-$root/target/deb}
here=$root/contrib/deb
cargo=${CARGO:-cargo}

die() { echo "build.sh: $*" >&2; exit 1; }
[ -x "$binary" ] || die "no executable $binary (cargo build --profile dist first)"
for tool in dpkg-buildpackage dh perl; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev debhelper)"
done
command -v "$cargo" >/dev/null || die "cargo is missing (it lists the crates for the copyright file)"

version=$("$binary" --version | awk '{print $2}')
[ -n "$version" ] || die "$binary --version printed no version"
# The Debian changelog names the version; a release adds its entry there.
changelog=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
[ "$changelog" = "$version" ] ||
    die "the binary is $version but contrib/deb/debian/changelog's last entry is $changelog: add an entry (dch -v $version)"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
src=$stage/novabmc-$version
mkdir -p "$src/staged/completions"
cp -R "$here/debian" "$src/debian"
cp "$root/README.md" "$src/"
cp "$binary" "$src/staged/novabmc"
cp "$here/novabmc.toml" "$src/staged/"
sed 's|/usr/local/bin/novabmc|/usr/bin/novabmc|g' "$root/contrib/systemd/novabmc.service" \
    > "$src/debian/novabmc.service"
"$binary" man "$src/staged/man"
"$binary" completions bash > "$src/staged/completions/novabmc"
"$binary" completions zsh > "$src/staged/completions/_novabmc"
"$binary" completions fish > "$src/staged/completions/novabmc.fish"
host=$("$cargo" -vV | sed -n 's/^host: //p')
(cd "$root" && "$cargo" metadata --format-version 1 --locked ${host:+--filter-platform "$host"}) |
    perl "$here/copyright.pl" > "$src/debian/copyright"

# -d: the build dependencies of a source build (debhelper aside) do not
# apply to packaging a binary already built.
(cd "$src" && dpkg-buildpackage --build=binary --no-sign -d) > "$stage/log" 2>&1 ||
    { cat "$stage/log" >&2; die "dpkg-buildpackage failed"; }
mkdir -p "$outdir"
for deb in "$stage"/*.deb "$stage"/*.ddeb; do
    [ -e "$deb" ] && mv "$deb" "$outdir/"
done
arch=$(dpkg --print-architecture)
out=$outdir/novabmc_${version}_${arch}.deb
[ -f "$out" ] || die "dpkg-buildpackage wrote no $out"
echo "$out"
