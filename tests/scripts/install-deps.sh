#!/usr/bin/env bash
# Installs the system packages stellamirror's build, demo and tests need, when missing.
# Debian/Ubuntu (apt-get), as root or through sudo. Extra package names may be passed.
#
# Sourcing this file defines the detection functions without installing anything, so the
# detection logic is tested against temporary directory trees (tests/install_deps.rs).
set -euo pipefail

# The directories clang-sys searches for libclang when LIBCLANG_PATH is unset (Linux).
libclang_dirs() {
  local root=${1:-}
  if [ -n "${LIBCLANG_PATH:-}" ] && [ -z "$root" ]; then echo "$LIBCLANG_PATH"; fi
  local d
  for d in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib64 \
    "$root"/usr/lib "$root"/usr/local/lib "$root"/usr/local/llvm*/lib; do
    [ -d "$d" ] && echo "$d"
  done
  return 0
}

# True when a directory holds a file clang-sys links against: `libclang.so` or a versioned
# `libclang-<N>.so` (both come from libclang-dev). `libclang-cpp.so.14`, which the image
# ships, is a different library (the C++ interface) and does not count; neither do
# suffix-versioned `libclang.so.1` files, which `ld` cannot link to.
libclang_in_dir() {
  local d=$1 f
  for f in "$d"/libclang.so "$d"/libclang-[0-9]*.so; do
    { [ -e "$f" ] || [ -L "$f" ]; } && return 0
  done
  return 1
}

# True when libclang is loadable by clang-sys under ROOT (default: this machine).
libclang_present() {
  local root=${1:-} d
  while IFS= read -r d; do
    libclang_in_dir "$d" && return 0
  done < <(libclang_dirs "$root")
  return 1
}

# Prints the packages missing on this machine, one per line. INSTALL_DEPS_ROOT (tests only)
# points the libclang detection at another file-system tree.
missing_packages() {
  libclang_present "${INSTALL_DEPS_ROOT:-}" || echo libclang-dev
  command -v clang >/dev/null 2>&1 || echo clang
  local tool
  for tool in zstd openssl age jq tar curl unzip; do
    command -v "$tool" >/dev/null 2>&1 || echo "$tool"
  done
  local extra
  for extra in "$@"; do
    case "$extra" in
      b3sum|restic|wrk) command -v "$extra" >/dev/null 2>&1 || echo "$extra" ;;
      time) [ -x /usr/bin/time ] || echo time ;;
      *) dpkg -s "$extra" >/dev/null 2>&1 || echo "$extra" ;;
    esac
  done
}

main() {
  local need
  mapfile -t need < <(missing_packages "$@")
  if [ ${#need[@]} -eq 0 ]; then return 0; fi
  echo "installing: ${need[*]}" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
