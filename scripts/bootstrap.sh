#!/usr/bin/env bash
# Install what the suite needs on a Debian machine, only what is missing (idempotent; a no-op when all present).
# Usage: scripts/bootstrap.sh [--test | --openblas]   (--test: only what `make test` needs; --openblas: only
# OpenBLAS, for `make bench-torch`; default: everything for reproduce)
set -euo pipefail
want_reproduce=1
[ "${1:-}" = "--test" ] && want_reproduce=0

# package -> a file that proves it is installed (cheaper and more robust than dpkg queries)
if [ "${1:-}" = "--openblas" ]; then
  want_reproduce=0
  declare -A probe=([libopenblas0-pthread]=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3)
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
  [ -e "${probe[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all dependencies present"
  exit 0
fi
echo "bootstrap: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
