#!/usr/bin/env bash
# The README's first command: build the bundled demo image, offline, as the current user.
# Output: ./demo.img (replaced if present). Everything it needs is in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
. ./.ci/deps.sh
ensure_deps demo
# Say why the first run is slow instead of sitting silent.
[ -x "$(cargo_target)/release/image-creator" ] ||
    echo "building image-creator (release) — about 3 minutes on 2 cores the first time, seconds afterwards" >&2
cargo run --release --quiet -- --overwrite examples/demo.yaml demo.img
echo
echo "Inspect it without root:"
echo "  sfdisk -d demo.img"
echo "  debugfs -R 'ls -l /contents/www' 'demo.img?offset=67108864'"
echo "  MTOOLS_SKIP_CHECK=1 mtype -i demo.img@@8388608 ::/offspot.yaml"
