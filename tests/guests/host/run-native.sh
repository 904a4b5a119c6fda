#!/bin/sh
# Runs the unprivileged parts of a guest kernel natively (as a 32-bit Linux program) so
# that real hardware gives the expected values: tests/guests/host/run-native.sh alu [verbose]
# Needs gcc-multilib (libc6-dev-i386).
set -e
here=$(cd "$(dirname "$0")" && pwd)
guests=$(dirname "$here")
name=$1; shift
out=${TMPDIR:-/tmp}/bt86-native-$name
gcc -m32 -O2 -no-pie -fno-pic -DHOST -mgeneral-regs-only -fno-strict-aliasing \
    -I "$guests/lib" -o "$out" \
    "$here/host.c" "$guests/lib/rt.c" "$guests/lib/entry.S" "$guests/$name.c"
exec "$out" "$@"
