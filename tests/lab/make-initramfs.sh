#!/usr/bin/env bash
# Builds a busybox initramfs for a Debian kernel fetched by fetch-kernel.sh.
#
#   make-initramfs.sh --kernel-dir DIR --scenario FILE --out FILE.cpio.gz
#                     [--module [later:]NAME]... [--file SRC:DEST]... [--drain-console]
#
# A module named later:NAME is in /lib/modules for the scenario to insmod itself (its
# dependencies load at boot).
# A --file that is a dynamically linked program brings its shared libraries; a symbolic link
# is copied as the file it points to.
#
# At boot /init mounts proc, sys and devtmpfs, loads the modules (with their dependencies, in
# order), runs the scenario with busybox sh, prints "LAB-EXIT <status>" and powers off (or
# reboots, if the scenario created /tmp/lab-reboot). With --drain-console the scenario runs
# on the console's own tty, which is closed before the power-off so that the kernel sends
# every byte first (a VM under test whose console is the UART being tested).
set -euo pipefail
kdir=""; scenario=""; out=""; modules=(); files=(); drain=0
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-dir) kdir=$2; shift 2;; --scenario) scenario=$2; shift 2;; --out) out=$2; shift 2;;
    --module) modules+=("$2"); shift 2;; --file) files+=("$2"); shift 2;; --drain-console) drain=1; shift;;
    *) echo "make-initramfs: unknown option $1" >&2; exit 2;;
  esac
done
[ -n "$kdir" ] && [ -n "$scenario" ] && [ -n "$out" ] || { echo "usage: $0 --kernel-dir DIR --scenario FILE --out FILE" >&2; exit 2; }
version=$(cat "$kdir/version")
moddir=$kdir/lib/modules/$version
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
cp /bin/busybox "$root/bin/busybox"

# Dependency order from modules.dep: each module after what it depends on.
declare -A seen=() later=()
order=()
add_module() {
  local path=$1 dep
  [ -n "${seen[$path]:-}" ] && return
  seen[$path]=1
  for dep in $(awk -F': ' -v m="$path" '$1 == m { print $2 }' "$moddir/modules.dep"); do add_module "$dep"; done
  order+=("$path")
}
for name in "${modules[@]}"; do
  deferred=0
  case $name in later:*) name=${name#later:}; deferred=1;; esac
  path=$(awk -F: -v n="/$name.ko" 'index($1, n) && substr($1, length($1) - length(n) + 1) == n { print $1; exit }' "$moddir/modules.dep")
  [ -n "$path" ] || { echo "make-initramfs: no module $name in $version" >&2; exit 1; }
  add_module "$path"
  [ $deferred = 1 ] && later[$path]=1
done
for path in "${order[@]}"; do
  cp "$moddir/$path" "$root/lib/modules/"
  [ -n "${later[$path]:-}" ] || basename "$path" >> "$root/etc/modules"
done
touch "$root/etc/modules"
for spec in "${files[@]}"; do
  mkdir -p "$root/$(dirname "${spec#*:}")"
  cp "${spec%%:*}" "$root/${spec#*:}"
  # A dynamically linked program brings its shared libraries along, at their host paths.
  if file -bL "${spec%%:*}" | grep -q 'dynamically linked'; then
    ldd "${spec%%:*}" | grep -o '/[^ ]*' | while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"
      cp -Ln "$lib" "$root$lib"
    done
  fi
done
cp "$scenario" "$root/scenario"
echo "$drain" > "$root/etc/drain-console"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/modules); do insmod /lib/modules/$m || echo "LAB: insmod $m failed"; done
# Reopen the console's tty (it also becomes the controlling terminal), so that closing it at
# the end is its last close: that waits until the UART has sent every byte, which a bare
# poweroff -f would drop from the kernel's buffer.
if [ "$(cat /etc/drain-console)" = 1 ]; then
  tty=/dev/$(cat /sys/class/tty/console/active | awk '{print $NF}')
  exec 0<$tty 1>$tty 2>&1
fi
sh /scenario
echo "LAB-EXIT $?"
exec 0</dev/null 1>/dev/null 2>&1
if [ -e /tmp/lab-reboot ]; then reboot -f; else poweroff -f; fi
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$out"
