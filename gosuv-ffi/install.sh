#!/bin/sh
# Installs libgosuv under PREFIX:
#
#   include/gosuv.h (and gosuv.hpp)   the C (and C++) headers
#   lib/libgosuv.so.X.Y.Z             the shared library, stripped, SONAME libgosuv.so.X,
#   lib/libgosuv.so.X, lib/libgosuv.so  with its links
#   lib/debug/PREFIX/lib/libgosuv.so.X.Y.Z.debug
#                                     its debug info, found by gdb through the library's
#                                     .gnu_debuglink (automatically under /usr, else with
#                                     `set debug-file-directory PREFIX/lib/debug`)
#   lib/libgosuv.a                    the static library: one object in which only the
#                                     gosuv_* functions are global (the Rust code inside
#                                     cannot clash with another Rust static library), no
#                                     debug info
#   lib/pkgconfig/gosuv.pc
#
#   cargo build --release -p gosuv-ffi
#   gosuv-ffi/install.sh /usr/local              # PREFIX [LIB_DIR]; LIB_DIR: target/release
#
# DESTDIR=/some/root puts the files under that root (for packaging); the paths written in
# them stay PREFIX's. ldconfig is run after a root install to /usr or /usr/local without
# DESTDIR; GOSUV_LDCONFIG=yes or no says otherwise. Needs binutils (objcopy, objdump, readelf,
# ld, ar, nm). Everything is made in a temporary directory first, then each file is put in
# place by a rename (a program starting meanwhile sees the old library or the new one, never
# half of one; a symbolic link at a destination is replaced, not written through).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
prefix=${1:?usage: install.sh PREFIX [LIB_DIR]}
libs=${2:-$root/target/release}
destdir=${DESTDIR:-}

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

case "$prefix" in
  /*) ;;
  *) die "PREFIX must be an absolute path, not '$prefix'" ;;
esac
nl='
'
# It is written into gosuv.pc by sed.
case "$prefix" in
  *[\\\&\|]* | *"$nl"*)
    die "PREFIX may not hold '\\', '&', '|' or a newline: '$prefix'" ;;
esac
for f in libgosuv.so libgosuv.a; do
  [ -f "$libs/$f" ] || die "$libs/$f is missing: run 'cargo build --release -p gosuv-ffi' first"
done
for tool in objcopy objdump readelf ld ar nm; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing: install binutils"
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
soname=libgosuv.so.$major
if ! readelf -d "$libs/libgosuv.so" | grep -q "(SONAME).*\[$soname\]"; then
  die "$libs/libgosuv.so has no SONAME $soname: it is from an older build; rebuild it"
fi

lib=$destdir$prefix/lib
debug_dir=$destdir$prefix/lib/debug$prefix/lib
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# put FILE DEST MODE: FILE (in $work) to DEST by a rename in DEST's directory.
put() {
  [ -d "$2" ] && [ ! -L "$2" ] && die "$2 is a directory"
  tmp=$(dirname "$2")/.$(basename "$2").new.$$
  rm -f "$tmp"
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  # A link to a directory would take the file into that directory.
  [ -L "$2" ] && rm -f "$2"
  mv -f "$tmp" "$2"
}

# Everything is made first: a failure installs nothing.
# The shared library: debug info to a file of its own, the library stripped and pointing
# at it (name and checksum) with .gnu_debuglink.
full=libgosuv.so.$version
objcopy --only-keep-debug --compress-debug-sections=zlib "$libs/libgosuv.so" "$work/$full.debug"
objcopy --strip-debug --strip-unneeded --remove-section=.comment \
  --add-gnu-debuglink="$work/$full.debug" "$libs/libgosuv.so" "$work/$full"

# The static library: every member linked into one relocatable object (keeping only what
# the gosuv_* functions reach), in which every other symbol is made local. BFD is told the
# object format: a plugin of another toolchain (LLVMgold) may fail on an object with this
# many sections otherwise.
format=$(objdump -f "$libs/libgosuv.so" 2>/dev/null | sed -n 's/.*file format //p' | head -n 1)
target=${format:+--target=$format}
roots=$(nm $target -g --defined-only "$libs/libgosuv.a" 2>/dev/null |
  awk '$3 ~ /^gosuv_/ { printf " -u %s", $3 }')
if [ -n "$roots" ] &&
  ld -r --gc-sections $roots --whole-archive "$libs/libgosuv.a" -o "$work/all.o" &&
  objcopy --strip-debug --wildcard --keep-global-symbol='gosuv_*' "$work/all.o" "$work/gosuv.o" &&
  (cd "$work" && ar $target rcs libgosuv.a gosuv.o); then
  :
else
  echo "install.sh: cannot make a libgosuv.a that exports only gosuv_* with this toolchain;" \
    "installing it as built (every Rust symbol global)" >&2
  rm -f "$work/libgosuv.a"
  cp "$libs/libgosuv.a" "$work/libgosuv.a"
fi

sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/gosuv.pc.in" > "$work/gosuv.pc"

# Then put in place: headers, debug info, the library and its links, the rest.
mkdir -p "$destdir$prefix/include" "$lib/pkgconfig" "$debug_dir"
for h in "$root"/include/gosuv.h "$root"/include/gosuv.hpp; do
  if [ -f "$h" ]; then
    put "$h" "$destdir$prefix/include/$(basename "$h")" 0644
  fi
done
put "$work/$full.debug" "$debug_dir/$full.debug" 0644
put "$work/$full" "$lib/$full" 0755
ln -sfn "$full" "$lib/$soname"
ln -sfn "$soname" "$lib/libgosuv.so"
put "$work/libgosuv.a" "$lib/libgosuv.a" 0644
put "$work/gosuv.pc" "$lib/pkgconfig/gosuv.pc" 0644

ldconfig_mode=${GOSUV_LDCONFIG:-auto}
if [ "$ldconfig_mode" = auto ]; then
  ldconfig_mode=no
  if [ -z "$destdir" ] && [ "$(id -u)" = 0 ]; then
    case "$prefix" in /usr | /usr/local) ldconfig_mode=yes ;; esac
  fi
fi
if [ "$ldconfig_mode" = yes ] && command -v ldconfig >/dev/null 2>&1; then
  ldconfig
else
  echo "ldconfig not run: link programs with -Wl,-rpath,$prefix/lib (or set LD_LIBRARY_PATH)," \
    "or run ldconfig if $prefix/lib is in /etc/ld.so.conf"
fi
echo "installed libgosuv $version in $destdir$prefix"
