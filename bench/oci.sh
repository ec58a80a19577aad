#!/usr/bin/env bash
# Pull + export of a ~100 MiB, 4-layer arm64 image from a local docker-registry, side by side:
#   image-creator oci-sizes REF   (pull every blob with digest checks, write the docker-archive, measure it)
#   skopeo copy docker://REF docker-archive:OUT.tar
# Alternated rounds, medians; peak RSS from /usr/bin/time. Needs docker-registry and skopeo (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$(. ./.ci/deps.sh && cargo_target)/release/image-creator
W=$(mktemp -d /var/tmp/ic-oci-bench.XXXXXX)
PORT=${PORT:-18988}
ROUNDS=${ROUNDS:-5}
cleanup() { kill "$REG" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cat > "$W/reg.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: 127.0.0.1:$PORT}
YAML
docker-registry serve "$W/reg.yml" >/dev/null 2>&1 &
REG=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done

# An OCI layout with 4 gzip layers of random data (~25 MiB each), linux/arm64.
python3 - "$W/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
layers, diffs = [], []
for i in range(4):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = os.urandom(25 * 1024 * 1024)
        info = tarfile.TarInfo(f"data/layer{i}.bin"); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    d, n = blob(gz)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
config = json.dumps({"architecture": "arm64", "os": "linux", "variant": "v8",
                     "rootfs": {"type": "layers", "diff_ids": diffs}, "config": {}}).encode()
cd, cn = blob(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
    "layers": layers}).encode()
md, mn = blob(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
PY
REF=127.0.0.1:$PORT/bench/big:1
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:1" "docker://$REF"

run_ic() {
    /usr/bin/time -f "%e %M" -o "$W/t" "$BIN" oci-sizes "$REF" >/dev/null
    cat "$W/t"
}
run_skopeo() {
    rm -f "$W/out.tar"
    /usr/bin/time -f "%e %M" -o "$W/t" skopeo copy -q --src-tls-verify=false --override-arch arm64 \
        "docker://$REF" "docker-archive:$W/out.tar:$REF" >/dev/null
    cat "$W/t"
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
IC=(); SK=(); ICM=(); SKM=()
for r in $(seq 1 "$ROUNDS"); do
    read -r t m < <(run_ic); IC+=("$t"); ICM+=("$m")
    read -r t m < <(run_skopeo); SK+=("$t"); SKM+=("$m")
    echo "round $r: image-creator ${IC[-1]} s (${ICM[-1]} KiB), skopeo ${SK[-1]} s (${SKM[-1]} KiB)"
done
A=$(printf '%s\n' "${IC[@]}" | median); B=$(printf '%s\n' "${SK[@]}" | median)
AM=$(printf '%s\n' "${ICM[@]}" | sort -g | tail -1); BM=$(printf '%s\n' "${SKM[@]}" | sort -g | tail -1)
echo
echo "pull + docker-archive export of a 4-layer, $(du -sm "$W/registry" | cut -f1) MiB image (median of $ROUNDS):"
printf 'image-creator oci-sizes   %6.2f s   peak RSS %4d MiB\n' "$A" $((AM / 1024))
printf 'skopeo copy               %6.2f s   peak RSS %4d MiB\n' "$B" $((BM / 1024))
printf 'time ratio image-creator/skopeo: %.2f\n' "$(echo "$A / $B" | bc -l)"
