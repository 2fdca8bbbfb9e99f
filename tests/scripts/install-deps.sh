#!/usr/bin/env bash
# Installs the system packages stellamirror's build, demo and tests need, when missing.
# Debian/Ubuntu (apt-get), as root or through sudo. Extra package names may be passed.
set -euo pipefail
need=()
have_lib() { ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; }
have_lib || need+=(libclang-dev)
command -v clang >/dev/null 2>&1 || need+=(clang)
for tool in zstd openssl age jq tar; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
for extra in "$@"; do
  case "$extra" in
    b3sum|restic) command -v "$extra" >/dev/null 2>&1 || need+=("$extra") ;;
    time) [ -x /usr/bin/time ] || need+=(time) ;;
    *) dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra") ;;
  esac
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
