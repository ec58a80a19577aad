#!/usr/bin/env bash
# Benchmark: filling the data partition (p3) of an image, side by side in one run.
#
#   (a) what image-creator does (src/disk/ext4): `mke2fs -d` straight into the image at a byte
#       offset, with the exact command line of Tools::mkfs, then the `debugfs -w -f` pass of
#       Tools::chown_root (the source belongs to a non-root user, as in a rootless build);
#   (b) the classic way: `losetup -f --show -o OFFSET` + mkfs.ext4 + mount + `cp -a` + sync + umount
#       (+ a final `sync IMAGE`: until then the data may sit dirty in the image file's page cache).
#
# Content: ~2 GiB of random files (200 x 1 MiB, 36 x 50 MiB, 2000 x 16 KiB), generated once from
# /dev/urandom. Filesystem: 2.5 GiB ext4 at an 8 MiB offset in a sparse image file.
# Page cache is dropped before each timed variant when run as root.
#
# Usage: [SOURCE=cold|warm] bench/fill-p3.sh [WORKDIR]   (default: a new directory under ${TMPDIR:-/tmp}; needs ~7 GiB)
# (b) needs root (loop device, mount); without root only (a) runs.
set -euo pipefail

OFFSET=$((8 * 1024 * 1024))
FS_SIZE=$((2560 * 1024 * 1024))
RATIO=65536
OWNER=65534:65534

for tool in mke2fs debugfs e2fsck; do
    if ! PATH="$PATH:/sbin:/usr/sbin" command -v "$tool" >/dev/null; then
        echo "error: $tool not found (Debian package e2fsprogs)" >&2
        exit 2
    fi
done
export PATH="$PATH:/sbin:/usr/sbin"

ROOT=0
[ "$(id -u)" -eq 0 ] && ROOT=1

WORK=${1:-}
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/fill-p3.XXXXXX")
    CLEAN_WORK=1
else
    mkdir -p "$WORK"
    CLEAN_WORK=0
fi
SRC="$WORK/src"
MNT="$WORK/mnt"
LOOP=""

cleanup() {
    if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" || true; fi
    if [ -n "$LOOP" ]; then losetup -d "$LOOP" || true; fi
    rm -f "$WORK/a.img" "$WORK/b.img" "$WORK/mke2fs.conf" "$WORK/sif.cmds" "$WORK/sif.err"
    rmdir "$MNT" 2>/dev/null || true
    if [ "$CLEAN_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# SOURCE=cold (default): the content is read from disk, as after a reboot.
# SOURCE=warm: the content is in the page cache, as right after image-creator downloaded it.
SOURCE=${SOURCE:-cold}
drop_caches() {
    sync
    if [ "$ROOT" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
    if [ "$SOURCE" = warm ]; then find "$SRC" -type f -print0 | xargs -0 cat >/dev/null; fi
}

now() { date +%s.%N; }

# The mke2fs.conf Tools::mkfs passes through MKE2FS_CONFIG (src/disk/ext4/mkfs.rs).
cat >"$WORK/mke2fs.conf" <<'EOF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 65536

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	floppy = {
		blocksize = 4096
	}
	small = {
		blocksize = 4096
	}
	default = {
		blocksize = 4096
	}
	big = {
		blocksize = 4096
	}
	huge = {
		blocksize = 4096
	}
EOF
export MKE2FS_CONFIG="$WORK/mke2fs.conf"
MKE2FS_OPTS=(-t ext4 -F -q -b 4096 -I 256 -L data -m 1 -i "$RATIO")

echo "== generating content in $SRC (once)"
if [ ! -e "$SRC/.complete" ]; then
    rm -rf "$SRC"
    mkdir -p "$SRC/small" "$SRC/medium" "$SRC/large"
    for i in $(seq 1 36); do head -c 50M /dev/urandom >"$SRC/large/l$i.bin"; done
    for i in $(seq 1 200); do head -c 1M /dev/urandom >"$SRC/medium/m$i.bin"; done
    # 2000 x 16 KiB cut from one random 32000 KiB blob (one urandom read instead of 2000).
    head -c $((2000 * 16 * 1024)) /dev/urandom >"$WORK/blob"
    (cd "$SRC/small" && split -b 16K -a 4 -d "$WORK/blob" s)
    rm -f "$WORK/blob"
    touch "$SRC/.complete"
fi
if [ "$ROOT" = 1 ]; then chown -R "$OWNER" "$SRC"; fi
CONTENT_BYTES=$(du -sb --apparent-size "$SRC" | cut -f1)
FILES=$(find "$SRC" -type f | wc -l)
echo "   $FILES files, $((CONTENT_BYTES / 1024 / 1024)) MiB"

# (a) exactly what Tools::mkfs + Tools::chown_root run.
run_a() {
    rm -f "$WORK/a.img"
    truncate -s $((OFFSET + FS_SIZE)) "$WORK/a.img"
    drop_caches
    local t0 t1
    t0=$(now)
    mke2fs "${MKE2FS_OPTS[@]}" -E "offset=$OFFSET,nodiscard,root_owner=0:0" -d "$SRC" \
        "$WORK/a.img" "$((FS_SIZE / 1024))k" </dev/null
    # Tools::chown_root: one `sif "PATH" uid|gid 0` per id that is not 0, all in one debugfs run.
    find "$SRC" -mindepth 1 \( ! -uid 0 -o ! -gid 0 \) -printf '%U %G /%P\n' |
        while read -r uid gid path; do
            q=${path//\"/\"\"}
            [ "$uid" != 0 ] && printf 'sif "%s" uid 0\n' "$q"
            [ "$gid" != 0 ] && printf 'sif "%s" gid 0\n' "$q"
            true
        done >"$WORK/sif.cmds"
    if [ -s "$WORK/sif.cmds" ]; then
        debugfs -w -f "$WORK/sif.cmds" "$WORK/a.img?offset=$OFFSET" >/dev/null 2>"$WORK/sif.err"
        if grep -v '^debugfs [0-9]' "$WORK/sif.err"; then echo "debugfs reported errors" >&2; exit 1; fi
    fi
    sync "$WORK/a.img"
    t1=$(now)
    e2fsck -fn "$WORK/a.img?offset=$OFFSET" >/dev/null 2>&1 || { echo "(a): e2fsck failed" >&2; exit 1; }
    echo "$t1 - $t0" | bc
}

# (b) the classic way, made as durable as (a): the loop device writes through the backing file's page
# cache, so the image is synced too.
run_b() {
    rm -f "$WORK/b.img"
    truncate -s $((OFFSET + FS_SIZE)) "$WORK/b.img"
    mkdir -p "$MNT"
    drop_caches
    local t0 t1
    t0=$(now)
    LOOP=$(losetup -f --show -o "$OFFSET" --sizelimit "$FS_SIZE" "$WORK/b.img")
    mkfs.ext4 "${MKE2FS_OPTS[@]}" -E nodiscard,root_owner=0:0 "$LOOP" </dev/null >/dev/null
    mount "$LOOP" "$MNT"
    cp -a "$SRC/." "$MNT/"
    sync
    umount "$MNT"
    losetup -d "$LOOP"
    LOOP=""
    sync "$WORK/b.img"
    t1=$(now)
    e2fsck -fn "$WORK/b.img?offset=$OFFSET" >/dev/null 2>&1 || { echo "(b): e2fsck failed" >&2; exit 1; }
    echo "$t1 - $t0" | bc
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

ROUNDS=${ROUNDS:-5}
A_TIMES=()
B_TIMES=()
echo "== $ROUNDS rounds, (a) and (b) alternated, source $SOURCE"
for r in $(seq 1 "$ROUNDS"); do
    A_TIMES+=("$(run_a)")
    if [ "$ROOT" = 1 ]; then B_TIMES+=("$(run_b)"); fi
    echo "   round $r: (a) ${A_TIMES[-1]} s${B_TIMES:+, (b) ${B_TIMES[-1]} s}"
done
A=$(printf '%s\n' "${A_TIMES[@]}" | median)
echo
echo "Filling a $((FS_SIZE / 1048576)) MiB ext4 at offset $OFFSET with $FILES files, $((CONTENT_BYTES / 1048576)) MiB (median of $ROUNDS, source $SOURCE):"
printf '%-44s %8.2f s  %7.1f MiB/s\n' "(a) mke2fs -d + debugfs chown" "$A" "$(echo "$CONTENT_BYTES / 1048576 / $A" | bc -l)"
if [ "$ROOT" != 1 ]; then
    echo "(b) loop + mount + cp -a needs root (losetup, mount): run this script as root to compare."
    exit 0
fi
B=$(printf '%s\n' "${B_TIMES[@]}" | median)
printf '%-44s %8.2f s  %7.1f MiB/s\n' "(b) loop + mkfs + mount + cp -a + sync" "$B" "$(echo "$CONTENT_BYTES / 1048576 / $B" | bc -l)"
printf 'ratio (b)/(a): %.2fx\n' "$(echo "$B / $A" | bc -l)"
