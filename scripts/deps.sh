#!/usr/bin/env bash
# deps.sh [PKG...] - installs the Debian packages Tandem needs (and the extra
# PKGs a target asks for, e.g. gnuplot-nox for make bench), only those missing.
# Checks each with dpkg-query; calls apt-get (as root, or through sudo) only when
# something is absent, so on a ready machine it is a no-op that needs no network.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libuv1-dev libsodium-dev libssl-dev check zlib1g-dev libopenblas-dev
  libonnx-dev protobuf-c-compiler libprotobuf-c-dev
  libinih-dev dataset-fashion-mnist python3
  libonnx-testdata
  "$@"
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
