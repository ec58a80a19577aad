#!/usr/bin/env bash
# Flashing benchmarks on loop devices (direct I/O to their backing files), side by side in one run, medians
# of ROUNDS alternated rounds:
#   1. full 1 GiB image: image-creator write (no verify) vs dd bs=4M oflag=direct      goal ≥ 0.95× dd
#   2. 25 %-mapped 1 GiB image with .bmap: image-creator write vs bmaptool copy vs dd
#   3. 1 vs 4 devices at once (the 25 % image): aggregate throughput
#   4. verification (read back + compare) vs a raw O_DIRECT read of the mapped bytes (dd iflag=direct)
#   5. write chunk sizes 1, 4 and 8 MiB (the default is chosen from this)
# Needs root (losetup). Loop devices are always detached on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$(. ./.ci/deps.sh && cargo_target)/release/image-creator
W=$(mktemp -d /var/tmp/ic-write-bench.XXXXXX)
ROUNDS=${ROUNDS:-3}
LOOPS=()
cleanup() { for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
# A fresh card: a 1.1 GiB backing file, attached with direct I/O; its device in $DEV. Not called in a
# subshell, so every device lands in LOOPS and is detached.
card() { sync; echo 3 > /proc/sys/vm/drop_caches; rm -f "$W/$1"; truncate -s 1100M "$W/$1"; DEV=$(losetup -f --show --direct-io=on "$W/$1"); LOOPS+=("$DEV"); }
free_cards() { for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done; LOOPS=(); }

head -c 1G /dev/urandom > "$W/full.img"
truncate -s 1G "$W/quarter.img"
for i in 0 1 2 3; do dd if=/dev/urandom of="$W/quarter.img" bs=1M count=64 seek=$((i * 256)) conv=notrunc status=none; done
bmaptool create -o "$W/quarter.img.bmap" "$W/quarter.img" 2>/dev/null
MiB=1048576

declare -A T
add() { T[$1]="${T[$1]:-} $2"; }
for r in $(seq 1 "$ROUNDS"); do
    sync; echo 3 > /proc/sys/vm/drop_caches
    card a; d=$DEV; t0=$(now); "$BIN" write --yes --force --no-verify "$W/full.img" "$d" >/dev/null; t1=$(now); add ic_full "$(echo "$t1 - $t0" | bc)"; free_cards
    card a; d=$DEV; t0=$(now); dd if="$W/full.img" of="$d" bs=4M oflag=direct conv=fsync status=none; t1=$(now); add dd_full "$(echo "$t1 - $t0" | bc)"; free_cards
    card a; d=$DEV; t0=$(now); "$BIN" write --yes --force --no-verify "$W/quarter.img" "$d" >/dev/null; t1=$(now); add ic_q "$(echo "$t1 - $t0" | bc)"; free_cards
    card a; d=$DEV; t0=$(now); bmaptool -q copy "$W/quarter.img" "$d"; t1=$(now); add bmap_q "$(echo "$t1 - $t0" | bc)"; free_cards
    card a; d=$DEV; t0=$(now); dd if="$W/quarter.img" of="$d" bs=4M oflag=direct conv=fsync status=none; t1=$(now); add dd_q "$(echo "$t1 - $t0" | bc)"; free_cards
    card a; a=$DEV; card b; b=$DEV; card c; c=$DEV; card e; e=$DEV
    t0=$(now); "$BIN" write --yes --force --no-verify "$W/quarter.img" "$a" "$b" "$c" "$e" >/dev/null; t1=$(now); add ic_q4 "$(echo "$t1 - $t0" | bc)"; free_cards
    # Verification: write + verify minus write alone, vs a raw direct read of the 256 mapped MiB.
    # The engine times its verify phase itself (summary table: "verify N MiB/s").
    card a; d=$DEV; "$BIN" write --yes --force "$W/quarter.img" "$d" | tail -1 > "$W/summary.json"
    v=$(python3 -c "import json,re,sys; s=json.load(open(sys.argv[1]))['summary']; print(re.findall(r'([0-9.]+) MiB/s', s)[-1])" "$W/summary.json")
    add ic_qv "$v"
    sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(now); for i in 0 1 2 3; do dd if="$d" of=/dev/null bs=4M iflag=direct skip=$((i * 64)) count=16 status=none; done; t1=$(now); add raw_read "$(echo "$t1 - $t0" | bc)"; free_cards
    for c in 1 4 8; do
        card a; t0=$(now); "$BIN" write --yes --force --no-verify --chunk "${c}MiB" "$W/full.img" "$DEV" >/dev/null; t1=$(now)
        add "chunk$c" "$(echo "$t1 - $t0" | bc)"; free_cards
    done
    echo "round $r done"
done
m() { printf '%s\n' ${T[$1]} | median; }
# min–max of a series, for the spread next to each median.
spread() { printf '%s\n' ${T[$1]} | sort -g | sed -n '1p;$p' | xargs printf '%.2f–%.2f'; }
rate() { echo "$1 / $2 / $MiB" | bc -l; }
FULL=$((1024 * MiB)); Q=$((256 * MiB))
echo
printf '1. full 1 GiB:     image-creator %6.2f s (%5.0f MiB/s)   dd %6.2f s (%5.0f MiB/s)   throughput ratio %.2f\n' \
    "$(m ic_full)" "$(rate $FULL "$(m ic_full)")" "$(m dd_full)" "$(rate $FULL "$(m dd_full)")" "$(echo "$(m dd_full) / $(m ic_full)" | bc -l)"
printf '2. 25%% mapped:     image-creator %6.2f s   bmaptool copy %6.2f s   dd %6.2f s   (vs bmaptool %.2fx, vs dd %.2fx faster)\n' \
    "$(m ic_q)" "$(m bmap_q)" "$(m dd_q)" "$(echo "$(m bmap_q) / $(m ic_q)" | bc -l)" "$(echo "$(m dd_q) / $(m ic_q)" | bc -l)"
printf '3. 1 vs 4 devices: 1 device %6.2f s (%5.0f MiB/s)   4 devices %6.2f s (%5.0f MiB/s aggregate)\n' \
    "$(m ic_q)" "$(rate $Q "$(m ic_q)")" "$(m ic_q4)" "$(rate $((4 * Q)) "$(m ic_q4)")"
printf '5. chunk size (full 1 GiB): 1 MiB %5.0f MiB/s   4 MiB %5.0f MiB/s   8 MiB %5.0f MiB/s\n' \
    "$(rate $FULL "$(m chunk1)")" "$(rate $FULL "$(m chunk4)")" "$(rate $FULL "$(m chunk8)")"
V=$(m ic_qv)
printf '4. verify 256 MiB: image-creator %5.0f MiB/s   raw O_DIRECT read %6.2f s (%5.0f MiB/s)   ratio %.2f\n' \
    "$V" "$(m raw_read)" "$(rate $Q "$(m raw_read)")" "$(echo "$V / $(rate $Q "$(m raw_read)")" | bc -l)"
echo "spread (min–max of $ROUNDS rounds, s): write full $(spread ic_full), dd full $(spread dd_full), write 25% $(spread ic_q), bmaptool $(spread bmap_q), dd 25% $(spread dd_q), 4 devices $(spread ic_q4), raw read $(spread raw_read); verify MiB/s $(spread ic_qv)"
