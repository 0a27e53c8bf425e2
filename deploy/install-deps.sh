#!/usr/bin/env bash
# Installs every Debian package that ptibus needs to build, test and run its demo.
# Idempotent: when everything is already there it prints nothing and exits 0.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
    libzmq3-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev lmdb-utils
    libuv1-dev libsodium-dev libjansson-dev libxml2-dev libxml2-utils libyaml-dev
    libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libcmocka-dev libsystemd-dev
    python3 python3-protobuf python3-jsonschema protobuf-compiler libprotobuf-dev strace pandoc valgrind
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
