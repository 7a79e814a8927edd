#!/bin/sh
# Installs libgosuv under PREFIX: include/gosuv.h, lib/libgosuv.so, lib/libgosuv.a and
# lib/pkgconfig/gosuv.pc.
#
#   cargo build --release -p gosuv-ffi
#   gosuv-ffi/install.sh /usr/local              # PREFIX [LIB_DIR]; LIB_DIR: target/release
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
prefix=${1:?usage: install.sh PREFIX [LIB_DIR]}
libs=${2:-$root/target/release}

for f in libgosuv.so libgosuv.a; do
  if [ ! -f "$libs/$f" ]; then
    echo "install.sh: $libs/$f is missing: run 'cargo build --release -p gosuv-ffi' first" >&2
    exit 1
  fi
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
cp "$root/include/gosuv.h" "$prefix/include/gosuv.h"
cp "$libs/libgosuv.so" "$libs/libgosuv.a" "$prefix/lib/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/gosuv.pc.in" \
  > "$prefix/lib/pkgconfig/gosuv.pc"
echo "installed libgosuv $version in $prefix"
