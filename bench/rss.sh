#!/usr/bin/env bash
# Peak memory of a build: a 4 GiB image holding 1.5 GiB of content (a 1 GiB file, a 256 MiB .tar.gz
# expanded, the xz base decoded), measured with /usr/bin/time -v. Goal: ≤ 100 MiB whatever the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$(. ./.ci/deps.sh && cargo_target)/release/image-creator
W=$(mktemp -d /var/tmp/ic-rss.XXXXXX)
trap 'rm -rf "$W"' EXIT
$BIN make-demo-base "$W/base.img.xz"
head -c 1G /dev/urandom > "$W/big.bin"
mkdir -p "$W/tree"
for i in $(seq 1 64); do head -c 4M /dev/urandom > "$W/tree/f$i.bin"; done
tar -C "$W/tree" -czf "$W/tree.tar.gz" .
cat > "$W/config.yaml" <<YAML
base: base.img.xz
output:
  size: 4GiB
files:
  - url: big.bin
    to: /data/contents/big.bin
  - url: tree.tar.gz
    to: /data/contents/tree
    via: gztar
    size: 300MiB
YAML
/usr/bin/time -v "$BIN" "$W/config.yaml" "$W/out.img" > "$W/progress.jsonl" 2> "$W/time.txt"
rss_kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$W/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$W/time.txt")
size=$(stat -c %s "$W/out.img")
echo "image size: $((size / 1048576)) MiB, wall: $wall, peak RSS: $((rss_kib / 1024)) MiB"
