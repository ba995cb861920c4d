#!/usr/bin/env bash
# Packs a release archive that runs from any folder: the binary with its web assets in site/
# beside it (the console finds them there), the systemd unit and its companions, the nginx
# recipe, and the docs. Used by `make dist`, and by the dist test with the
# test build's binary.
# Usage: scripts/dist.sh BINARY SITE_DIR OUT_DIR  -> prints the archive's path.
set -euo pipefail
bin=$1 site=$2 out=$3
here=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$bin" ] || { echo "dist: no binary at $bin" >&2; exit 1; }
[ -d "$site/pkg" ] || { echo "dist: no built site at $site (pkg/ missing): run make site" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
name="offboard-${version}-$(uname -m)-linux"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/deploy" "$root/docs"
cp "$bin" "$root/offboard"
cp -r "$site" "$root/site"
# The unit and its companions, and the nginx recipe (deploy/nginx/).
cp -r "$here"/deploy/. "$root/deploy/"
cp "$here"/README.md "$root/"
cp "$here"/docs/*.md "$root/docs/"
mkdir -p "$out"
archive="$(cd "$out" && pwd)/$name.tar.gz"
tar -C "$stage" -czf "$archive" "$name"
echo "$archive"
