# L1: the host the Linux guests (L2) run on, under Bulkhead. Runs the VMs named on its command
# line in turn and checks what each left behind with the host's own tools. Prints "LAB:"
# lines for the test; each VM's console log follows with a prefix ("PVH| ", "BLK| ", "GEN| ",
# "NET| ", "E1K| ", "IDE| ", "BAL| ", "REC| ").
#   host.sh scsi|blk|generic|net|e1000|ide|balloon|recovery...
mount -t tmpfs tmp /tmp
mkdir -p /run /mnt && mount -t tmpfs run /run
B=/opt/bulkhead
PIN1=2; PIN2=1,2  # the L1 CPUs of a one-vCPU and a two-vCPU VM (below)
G=/opt/guests
# L1's kernel is randomized (KASLR): with this, the RIPs of a hang report (LAB-HANG) map to
# System.map offsets.
echo "LAB: L1 $(grep -m1 ' T _text$' /proc/kallsyms)"

# Every VM pins its vCPU threads (--vcpu-pin) to L1's CPUs 1 and 2, away from CPU 0, which
# takes L1's device interrupts: an L2 vCPU on CPU 0, or one that L1 moved between CPUs,
# triple-faulted at a random point of its boot (lab.cc; README, Host notes).
#
# For whoever debugs a scenario that stops making progress: every 100 s, what each thread is
# doing (state, kernel wait channel, CPU time in ticks), a vCPU thread's too: a halted L2 vCPU
# waits in kvm_vcpu_block, one that runs L2 shows R and a growing time.
( while sleep 100; do
    echo "LAB-WATCH uptime $(cut -d' ' -f1 /proc/uptime)"
    for p in /proc/[0-9]*; do
      read -r pid comm state ppid rest < $p/stat 2>/dev/null && [ "$ppid" != 2 ] && [ "$pid" != 2 ] || continue
      for t in $p/task/*; do
        read -r tid tcomm tstate x x x x x x x x x x utime stime rest < $t/stat 2>/dev/null &&
          echo "LAB-WATCH $pid/${t##*/} $tcomm $tstate $(cat $t/wchan 2>/dev/null) $((utime + stime))"
      done
    done
  done ) &

# Kills process NAME COUNT times (default 6), 0.8 s apart, and says so: "LAB: LABEL killed NAME I".
#   sh /tmp/kill.sh NAME [COUNT [LABEL]]
cat > /tmp/kill.sh <<'KILL'
for i in $(seq ${2:-6}); do
  sleep 0.8
  kill -9 $(pidof $1) && echo "LAB: ${3:-recovery} killed $1 $i"
done
KILL

# Drives the console of VM $vm, /tmp/NAME.sock (logged to /tmp/NAME.log), through
# bh-lab-console's steps; stops the VM if the conversation fails, then waits for it. Prints
# "LAB: NAME console RC" and "LAB: NAME exit RC".
#   converse NAME SECONDS STEP...
converse() {
name=$1; shift
$B/bh-lab-console /tmp/$name.sock /tmp/$name.log "$@"
rc=$?
echo "LAB: $name console $rc"
# A console that failed may have been the first sign of a dying VM: give it a second to say so.
[ $rc -eq 0 ] || { sleep 1; kill $vm; }
wait $vm
echo "LAB: $name exit $?"
}

# PVH vmlinux, two vCPUs, virtio-scsi with three LUNs, interactive serial console.
scsi() {
truncate -s 64M /tmp/rw.img
dd if=/dev/urandom of=/tmp/ro.img bs=1M count=4 2>/dev/null
md5sum < /tmp/ro.img > /tmp/ro.md5
truncate -s 8G /tmp/sparse.img
$B/bulkhead run --name pvh --kernel $G/cloud-vmlinux --initrd $G/scsi.gz --memory 256M --cpus 2 --vcpu-pin $PIN2 \
  --disk /tmp/rw.img --disk /tmp/ro.img,ro --disk /tmp/sparse.img --cmdline "console=ttyS0" \
  --serial unix=/tmp/pvh.sock > /tmp/pvh.err 2>&1 &
vm=$!
# After the typed command, `bulkhead ctl pause` for 5 s between two readings of L2's uptime
# (typed into its shell) and two of L1's (around the pause), so the test sees L2's clock stop.
converse pvh 300 expect=L2-SHELL-READY 'send=echo typed-$((6*7))' expect=typed-42 \
  'send=read u x < /proc/uptime; echo up-$((1+1)) $u $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)' 'expect=up-2 ' \
  'run=read u x < /proc/uptime; ctl="/opt/bulkhead/bulkhead ctl --vm pvh"; $ctl pause > /tmp/pvh-ctl.log 2>&1; p=$?; sleep 5; $ctl resume >> /tmp/pvh-ctl.log 2>&1; r=$?; read v x < /proc/uptime; echo "LAB: pvh l1 before $u paused $p resumed $r after $v"; sed "s/^/LAB: pvh ctl /" /tmp/pvh-ctl.log' \
  'send=read u x < /proc/uptime; echo up-$((1+2)) $u' 'expect=up-3 ' 'send=poweroff -f' eof
sed 's/^/PVH| /' /tmp/pvh.log /tmp/pvh.err
/usr/sbin/e2fsck -fn /tmp/rw.img > /tmp/fsck.log 2>&1
echo "LAB: e2fsck $?"
echo "LAB: hello $(/usr/sbin/debugfs -R 'cat /hello.txt' /tmp/rw.img 2>/dev/null)"
echo "LAB: numbers last $(/usr/sbin/debugfs -R 'cat /numbers.txt' /tmp/rw.img 2>/dev/null | tail -1)"
/usr/sbin/debugfs -R "dump /dir/random.bin /tmp/random.bin" /tmp/rw.img 2>/dev/null
echo "LAB: random md5 $(md5sum < /tmp/random.bin)"
if md5sum < /tmp/ro.img | cmp -s - /tmp/ro.md5; then echo "LAB: ro image unchanged"; else echo "LAB: ro image changed"; fi
rm -f /tmp/rw.img /tmp/ro.img /tmp/sparse.img /tmp/random.bin
}

# bzImage, virtio-blk from qemu-storage-daemon.
blk() {
truncate -s 64M /tmp/blk.img
$B/qemu-storage-daemon --blockdev driver=file,node-name=f0,filename=/tmp/blk.img \
  --export type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=/tmp/blk.sock,writable=on &
qsd=$!
for i in $(seq 100); do [ -S /tmp/blk.sock ] && break; sleep 0.1; done
timeout 300 $B/bulkhead run --name blk --kernel $G/cloud-vmlinuz --initrd $G/blk.gz --memory 256M --cpus 2 --vcpu-pin $PIN2 \
  --vhost-user type=blk,socket=/tmp/blk.sock --cmdline "console=ttyS0" --serial file=/tmp/blk.log > /tmp/blk.err 2>&1
echo "LAB: blk exit $?"
kill $qsd; wait $qsd
sed 's/^/BLK| /' /tmp/blk.log /tmp/blk.err
/usr/sbin/e2fsck -fn /tmp/blk.img > /dev/null 2>&1
echo "LAB: blk e2fsck $?"
echo "LAB: blk file $(/usr/sbin/debugfs -R 'cat /blk.txt' /tmp/blk.img 2>/dev/null)"
rm -f /tmp/blk.img
}

# Debian's generic kernel.
generic() {
timeout 300 $B/bulkhead run --name generic --kernel $G/generic-vmlinuz --initrd $G/generic.gz --memory 256M --vcpu-pin $PIN1 \
  --cmdline "console=ttyS0" --serial file=/tmp/generic.log > /tmp/generic.err 2>&1
echo "LAB: generic exit $?"
sed 's/^/GEN| /' /tmp/generic.log /tmp/generic.err
}

# Two virtio-net NICs: user-mode networking with a forwarded port, and a multiqueue tap.
net() {
ip=/opt/bulkhead/ip
ip link set lo up
$ip tuntap add dev bhtap0 mode tap vnet_hdr multi_queue
$ip addr add 10.0.3.1/24 dev bhtap0
$ip link set bhtap0 up
mkdir -p /tmp/www
dd if=/dev/urandom of=/tmp/www/blob bs=64k count=64 2>/dev/null
echo "LAB: blob $(md5sum < /tmp/www/blob)"
httpd -p 8000 -h /tmp/www
timeout 400 $B/bulkhead run --name net --kernel $G/cloud-vmlinux --initrd $G/net.gz --memory 256M --cpus 2 --vcpu-pin $PIN2 \
  --net user,hostfwd=tcp:127.0.0.1:8080-:80 --net tap=bhtap0,queues=2 --cmdline "console=ttyS0" \
  --serial file=/tmp/net.log > /tmp/net.err 2>&1 &
vm=$!
for i in $(seq 240); do grep -q L2-NET-READY /tmp/net.log 2>/dev/null && break; kill -0 $vm 2>/dev/null || break; sleep 1; done
if grep -q L2-NET-READY /tmp/net.log; then
  echo "LAB: hostfwd got $(timeout 60 wget -q -O - http://127.0.0.1:8080/guest.txt)"
  echo "LAB: tap got $(timeout 60 wget -q -O - http://10.0.3.2/guest.txt)"
  ping -c 2 -W 5 10.0.3.2 > /dev/null && echo "LAB: ping over the tap ok"
  echo "done" > /tmp/www/word
else
  echo "LAB: L2 did not get ready"
  kill $vm
fi
wait $vm
echo "LAB: net exit $?"
sed 's/^/NET| /' /tmp/net.log /tmp/net.err
}

# Full-virtualization mode: two e1000 NICs, user-mode networking and a tap; Debian's generic kernel.
e1000() {
ip=/opt/bulkhead/ip
ip link set lo up
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
$ip tuntap add dev bhtap1 mode tap vnet_hdr
$ip addr add 10.0.3.1/24 dev bhtap1
$ip link set bhtap1 up
mkdir -p /tmp/www
dd if=/dev/urandom of=/tmp/www/blob bs=64k count=64 2>/dev/null
echo "LAB: e1000 blob $(md5sum < /tmp/www/blob)"
pidof httpd > /dev/null || httpd -p 8000 -h /tmp/www
timeout 400 $B/bulkhead run --name e1000 --mode full --kernel $G/generic-vmlinuz --initrd $G/e1000.gz --memory 256M --vcpu-pin $PIN1 \
  --net user --net tap=bhtap1 --cmdline "console=ttyS0" --serial file=/tmp/e1000.log > /tmp/e1000.err 2>&1
echo "LAB: e1000 exit $?"
s=/sys/class/net/bhtap1/statistics
echo "LAB: tap counters rx $(cat $s/rx_packets) tx $(cat $s/tx_packets)"
sed 's/^/E1K| /' /tmp/e1000.log /tmp/e1000.err
}

# A complete full-virtualization VM (Debian's generic kernel): an ext4 disk and a sparse 200 GiB
# disk on IDE, the test's ISO on the IDE CD-ROM, an e1000 on user-mode networking, ttyS0. When
# L2 starts its recovery rounds, L1 kills bh-ide six times.
ide() {
ip link set lo up
mkdir -p /tmp/www
dd if=/dev/urandom of=/tmp/www/blob bs=64k count=16 2>/dev/null
echo "LAB: ide blob $(md5sum < /tmp/www/blob)"
pidof httpd > /dev/null || httpd -p 8000 -h /tmp/www
truncate -s 64M /tmp/ide.img
truncate -s 200G /tmp/ide-big.img
( for i in $(seq 2000); do grep -q L2-IDE-WRITING /tmp/ide.log 2>/dev/null && break; sleep 0.2; done
  sh /tmp/kill.sh bh-ide 6 ide ) > /tmp/ide-kill.log 2>&1 &
killer=$!
timeout 460 $B/bulkhead run --name ide --mode full --kernel $G/generic-vmlinuz --initrd $G/ide.gz --memory 256M --vcpu-pin $PIN1 \
  --disk /tmp/ide.img --disk /tmp/ide-big.img --cdrom $G/cd.iso --net user --device-restarts 20/60 --cmdline "console=ttyS0" \
  --serial file=/tmp/ide.log > /tmp/ide.err 2>&1
echo "LAB: ide exit $?"
kill $killer 2>/dev/null; wait $killer
cat /tmp/ide-kill.log
sed 's/^/IDE| /' /tmp/ide.log /tmp/ide.err
/usr/sbin/e2fsck -fn /tmp/ide.img > /tmp/ide-fsck.log 2>&1
echo "LAB: ide e2fsck $?"
echo "LAB: ide hello $(/usr/sbin/debugfs -R 'cat /hello.txt' /tmp/ide.img 2>/dev/null)"
echo "LAB: ide numbers last $(/usr/sbin/debugfs -R 'cat /numbers.txt' /tmp/ide.img 2>/dev/null | tail -1)"
/usr/sbin/debugfs -R "dump /random.bin /tmp/ide-random.bin" /tmp/ide.img 2>/dev/null
echo "LAB: ide random md5 $(md5sum < /tmp/ide-random.bin)"
echo "LAB: ide lba48 md5 $(dd if=/tmp/ide-big.img bs=64k skip=2457600 count=16 2>/dev/null | md5sum)"
rm -f /tmp/ide.img /tmp/ide-big.img /tmp/ide-random.bin
}

# virtio-balloon with Linux's own driver (balloon-guest.sh): guest RAM as the host sees it (the
# core's memfd blocks and PSS) at each step of the guest's, and a new target set with `bulkhead
# ctl balloon`.
balloon() {
cat > /tmp/measure.sh <<'MEASURE'
p=$(pidof bh-core)
for f in /proc/$p/fd/*; do case $(readlink $f) in *bulkhead-guest-ram*) blocks=$(stat -L -c %b $f);; esac; done
echo "LAB: balloon $1 ram_kib=$((blocks / 2)) pss_kib=$(awk '$1 == "Pss:" { print $2 }' /proc/$p/smaps_rollup)"
MEASURE
$B/bulkhead run --name balloon --kernel $G/cloud-vmlinux --initrd $G/balloon.gz --memory 512M --vcpu-pin $PIN1 \
  --balloon target=384M,free-page-reporting=on,stats-interval=2 --cmdline "console=ttyS0" \
  --serial unix=/tmp/balloon.sock > /tmp/balloon.err 2>&1 &
vm=$!
converse balloon 600 expect=L2-TOUCHED "run=sh /tmp/measure.sh touched" send=go \
  expect=L2-INFLATED "run=sh /tmp/measure.sh inflated" send=go expect=L2-FILLED "run=sh /tmp/measure.sh filled" \
  send=go expect=L2-FREED "run=sh /tmp/measure.sh freed" \
  "run=$B/bulkhead ctl --vm balloon balloon-stats 2>&1 | sed 's/^/LAB: balloon ctl /'" \
  "run=$B/bulkhead ctl --vm balloon balloon 256M 2>&1 | sed 's/^/LAB: balloon ctl /'" send=go \
  expect=L2-CTL-INFLATED "run=$B/bulkhead ctl --vm balloon balloon-stats 2>&1 | sed 's/^/LAB: balloon ctl /'" \
  send=go eof
sed 's/^/BAL| /' /tmp/balloon.log /tmp/balloon.err
}

# virtio-scsi, then virtio-net, each while its device process is killed six times (Bulkhead
# restarts it each time); L2 writes and checks, then downloads and checks, until the kills of
# each are done.
recovery() {
truncate -s 128M /tmp/rec.img
ip link set lo up
mkdir -p /tmp/www
dd if=/dev/urandom of=/tmp/www/blob bs=64k count=128 2>/dev/null
echo "LAB: recovery blob $(md5sum < /tmp/www/blob)"
pidof httpd > /dev/null || httpd -p 8000 -h /tmp/www
$B/bulkhead run --name recovery --kernel $G/cloud-vmlinux --initrd $G/recovery.gz --memory 384M --vcpu-pin $PIN1 \
  --disk /tmp/rec.img --net user --device-restarts 20/60 --cmdline "console=ttyS0" --serial unix=/tmp/recovery.sock \
  > /tmp/recovery.err 2>&1 &
vm=$!
converse recovery 420 expect=L2-WRITING "run=sh /tmp/kill.sh bh-virtio-scsi > /tmp/kill.log" \
  send=go expect=L2-FETCHING "run=sh /tmp/kill.sh bh-virtio-net >> /tmp/kill.log" send=go \
  expect=L2-SERIAL "send=seq 1 2000" "run=sh /tmp/kill.sh bh-serial 3 >> /tmp/kill.log" reconnect \
  'send=echo serial-$((6*7))' expect=serial-42 send=exit eof
cat /tmp/kill.log
sed 's/^/REC| /' /tmp/recovery.log /tmp/recovery.err
rm -f /tmp/rec.img
}

# A diagnostic of the lab itself (LinuxGuestLab.DISABLED_RepeatedBootsReachUserSpace, README,
# Host notes): boots the cloud kernel to user space LAB_BOOTS times with LAB_CPUS vCPUs pinned
# to LAB_PIN (from L1's kernel command line) and says how each boot ended.
boots() {
echo "LAB: L1 clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
truncate -s 64M /tmp/boot.img
for i in $(seq ${LAB_BOOTS:-10}); do
  timeout 120 $B/bulkhead run --name boot$i --kernel $G/cloud-vmlinux --initrd $G/boots.gz --memory 256M --disk /tmp/boot.img \
    --cpus ${LAB_CPUS:-2} --vcpu-pin ${LAB_PIN:-$PIN2} --cmdline "console=ttyS0" --serial file=/tmp/boot.log > /tmp/boot.err 2>&1
  rc=$?
  echo "LAB: boot $i exit $rc user-space $(grep -c L2-BOOTED /tmp/boot.log) $(grep -o 'triple fault.*' /tmp/boot.err)"
  [ $rc -eq 0 ] && grep -q L2-BOOTED /tmp/boot.log || sed "s/^/BOOT| /; s/LAB-EXIT/L2-EXIT/" /tmp/boot.log /tmp/boot.err | tail -40
done
}

for vm in "$@"; do $vm; done
