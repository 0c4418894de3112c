#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need: LLVM/MLIR 22 for crates/kernel-verify
# (melior 0.27), and the encoder the audio tests make an OGG file with. Idempotent: does nothing
# when every package is already installed. Uses sudo when not root.
#
# Why each package:
#   libmlir-22-dev mlir-22-tools llvm-22-dev libpolly-22-dev  MLIR/LLVM headers, libs, llvm-config
#                                                              (mlir-sys, tblgen and melior's build scripts)
#   libclang-22-dev                                            libclang for bindgen (mlir-sys) + clang's
#                                                              builtin headers
#   libzstd-dev libz3-dev libxml2-dev zlib1g-dev               `llvm-config --system-libs` of the static
#                                                              LLVM libs that tblgen links
#   g++                                                        tblgen's C++ shim (cc crate)
#   vorbis-tools                                               oggenc: the OGG/Vorbis decoding test
#                                                              encodes its input with it
# After it, build with MLIR_SYS_220_PREFIX=/usr/lib/llvm-22 TABLEGEN_220_PREFIX=/usr/lib/llvm-22
# (`cargo xtask verify-kernels` sets both itself).
set -euo pipefail

packages=(
    libmlir-22-dev mlir-22-tools llvm-22-dev libpolly-22-dev
    libclang-22-dev
    libzstd-dev libz3-dev libxml2-dev zlib1g-dev
    g++
    vorbis-tools
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-system-packages: all installed (LLVM/MLIR $(/usr/lib/llvm-22/bin/llvm-config --version))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "install-system-packages: need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi

echo "install-system-packages: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

version=$(/usr/lib/llvm-22/bin/llvm-config --version)
case "$version" in
    22.*) echo "install-system-packages: LLVM/MLIR $version installed in /usr/lib/llvm-22" ;;
    *) echo "install-system-packages: expected LLVM 22 in /usr/lib/llvm-22, found $version" >&2; exit 1 ;;
esac
