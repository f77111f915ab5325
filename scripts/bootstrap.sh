#!/usr/bin/env bash
# Install what the suite needs on a Debian machine, only what is missing (idempotent; a no-op when all present).
# Usage: scripts/bootstrap.sh [--test | --openblas | --fuzz]   (--test: only what `make test` needs; --openblas:
# only OpenBLAS, for `make bench-torch`; --fuzz: clang, its libFuzzer runtime and llvm-cov, for `make fuzz`;
# default: everything for reproduce)
set -euo pipefail
want_reproduce=1
[ "${1:-}" = "--test" ] && want_reproduce=0

# package -> a file (or a glob, where the path carries a version) that proves it is installed (cheaper and more
# robust than dpkg queries)
if [ "${1:-}" = "--openblas" ]; then
  want_reproduce=0
  declare -A probe=([libopenblas0-pthread]=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3)
elif [ "${1:-}" = "--fuzz" ]; then
  # Debian 12's default clang (14); the fuzzer runtime lives in a versioned directory
  want_reproduce=0
  declare -A probe=(
    [clang]=/usr/bin/clang
    [libclang-rt-14-dev]='/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a'
    [llvm]=/usr/bin/llvm-cov
  )
else
declare -A probe=(
  [libgsl-dev]=/usr/include/gsl/gsl_integration.h
  [zlib1g-dev]=/usr/include/zlib.h
  [libpng-dev]=/usr/include/png.h
  [pkg-config]=/usr/bin/pkg-config
  [make]=/usr/bin/make
  [gcc]=/usr/bin/gcc
)
fi
if [ $want_reproduce = 1 ]; then
  probe[gnuplot-nox]=/usr/bin/gnuplot
fi

missing=()
for pkg in "${!probe[@]}"; do
  compgen -G "${probe[$pkg]}" >/dev/null || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all dependencies present"
  exit 0
fi
echo "bootstrap: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# another apt-get or dpkg (unattended upgrades, a second shell) may hold the lock: wait for it, do not fail
apt_wait="$(dirname "$0")/apt_get_wait.sh"
$SUDO env DEBIAN_FRONTEND=noninteractive APT_LOCK_WAIT="${APT_LOCK_WAIT:-900}" "$apt_wait" update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive APT_LOCK_WAIT="${APT_LOCK_WAIT:-900}" "$apt_wait" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
