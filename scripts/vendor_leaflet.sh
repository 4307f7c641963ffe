#!/bin/sh
# Vendor one pinned Leaflet release (BSD-2-Clause) into the console's static folder, so the
# map page needs nothing from the internet at run time. Run it by hand to refresh the copy
# (it needs npm and the registry); the app, the image and CI only use the committed files.
#
# The tarball is checked against the registry's sha512 integrity written below before anything
# is extracted; VERSION records the sha256 of every vendored file (tests/test_console_map.py
# checks them, since the tarball's own hash cannot be recomputed from the extracted files).
set -eu

VERSION=1.9.4
INTEGRITY="sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA=="
SOURCE="https://registry.npmjs.org/leaflet/-/leaflet-$VERSION.tgz"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/service/console/static/vendor/leaflet"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "leaflet@$VERSION" >/dev/null)
TARBALL="$WORK/leaflet-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
if [ "$GOT" != "$INTEGRITY" ]; then
    echo "leaflet-$VERSION.tgz: integrity $GOT, expected $INTEGRITY: nothing vendored" >&2
    exit 1
fi

tar -xzf "$TARBALL" -C "$WORK" package/LICENSE package/dist/leaflet.js package/dist/leaflet.css package/dist/images
rm -rf "$DEST"
mkdir -p "$DEST/images"
cp "$WORK/package/LICENSE" "$WORK/package/dist/leaflet.js" "$WORK/package/dist/leaflet.css" "$DEST/"
cp "$WORK/package/dist/images/"* "$DEST/images/"

cd "$DEST"
{
    echo "leaflet $VERSION"
    echo "integrity $INTEGRITY"
    echo "source $SOURCE"
    echo "# sha256 of each vendored file (checked by tests/test_console_map.py)"
    find . -type f ! -name VERSION | sed 's|^\./||' | LC_ALL=C sort | while read -r f; do
        echo "sha256 $(sha256sum "$f" | cut -d' ' -f1) $f"
    done
} > VERSION
echo "vendored leaflet $VERSION into ${DEST#"$ROOT"/}"
