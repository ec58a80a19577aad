#!/usr/bin/env bash
# Cold vs warm build with a download cache, and the bytes each build writes to disk.
# A local HTTP server (python3 -m http.server on loopback) serves the demo base and 1 GiB of content.
# Bytes written: file-system outputs of the build and its children (mke2fs, debugfs), from
# /usr/bin/time's %O (512-byte units). A warm build should write about the image's data once: downloads
# are adopted into the cache by rename and hardlinked into the staging tree, never copied.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$(. ./.ci/deps.sh && cargo_target)/release/image-creator
W=$(mktemp -d /var/tmp/ic-cache-bench.XXXXXX)
PORT=${PORT:-18977}
cleanup() { kill "$SERVER" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www"
$BIN make-demo-base "$W/www/base.img.xz" >/dev/null
head -c 1G /dev/urandom > "$W/www/content.bin"
(cd "$W/www" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
SERVER=$!
sleep 1
cat > "$W/config.yaml" <<YAML
base: http://127.0.0.1:$PORT/base.img.xz
files:
  - url: http://127.0.0.1:$PORT/content.bin
    to: /data/contents/content.bin
YAML
build() { # name
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %O" -o "$W/$1.time" "$BIN" --cache-dir "$W/cache" "$W/config.yaml" "$W/$1.img" >/dev/null
    read -r secs blocks < "$W/$1.time"
    used=$(du -B1 "$W/$1.img" | cut -f1)
    printf '%-5s %7.2f s   written %6d MiB   image data %6d MiB   ratio %.2f\n' "$1" "$secs" \
        $((blocks * 512 / 1048576)) $((used / 1048576)) "$(echo "$blocks * 512 / $used" | bc -l)"
}
echo "content: 1 GiB over HTTP on loopback; demo base"
build cold
build warm
