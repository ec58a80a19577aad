#!/usr/bin/env bash
# The README's first command: build the bundled demo image, offline, as the current user.
# Output: ./demo.img (replaced if present). Everything it needs is in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
. ./.ci/deps.sh
ensure_deps
cargo run --release --quiet -- --overwrite examples/demo.yaml demo.img
echo
echo "Inspect it without root:"
echo "  sfdisk -d demo.img"
echo "  debugfs -R 'ls -l /contents/www' 'demo.img?offset=67108864'"
echo "  MTOOLS_SKIP_CHECK=1 mtype -i demo.img@@8388608 ::/offspot.yaml"
