# Sourced by examples/demo.sh and tests/run.sh: installs, on a fresh Debian machine, what the demo
# (`ensure_deps demo`: e2fsprogs, a C linker for cargo) or the test suite (`ensure_deps`, everything) needs.
# Only missing packages are installed, so nothing runs apt (or waits for its lock) when all are there
# (apt-get needs root; without root it says what to install).
DEMO_DEPS=(e2fsprogs gcc libc6-dev)
TEST_DEPS=(e2fsprogs fdisk dosfstools mtools xz-utils gzip bzip2 zstd util-linux python3 python3-yaml python3-venv time bc gcc libc6-dev docker-registry skopeo apache2-utils bmap-tools mount curl lvm2)
ensure_deps() {
    local wanted
    if [ "${1:-test}" = demo ]; then wanted=("${DEMO_DEPS[@]}"); else wanted=("${TEST_DEPS[@]}"); fi
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
            return 2
        fi
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # The tests compare our offspot.yaml with what PyYAML reads; a python3 from pyenv may lack it.
    # tests/device_judge.rs installs offspot-config from PyPI into venvs (python3-venv).
    if [ "${1:-test}" != demo ]; then
        python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q pyyaml
    fi
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust (https://rustup.rs) first" >&2
        return 2
    fi
    # The test command runs fmt and clippy too.
    if [ "${1:-test}" != demo ]; then
        cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
        cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
    fi
}

# Where cargo puts its build output (honours CARGO_TARGET_DIR and .cargo/config).
cargo_target() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
