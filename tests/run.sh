#!/usr/bin/env bash
# The README's test command: installs what the suite needs (fresh Debian, as root), then runs every gate:
# formatting, clippy, unit and integration tests (real binary, real e2fsprogs/dosfstools/mtools, HTTP servers
# on loopback, loop devices, an unprivileged user).
set -euo pipefail
cd "$(dirname "$0")/.."
. ./.ci/deps.sh
ensure_deps
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets --no-fail-fast 2>&1
