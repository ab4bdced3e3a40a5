# L1: the host the Linux guests (L2) run on, under Bulkhead. Runs the VMs named on its command
# line in turn and checks what each left behind with the host's own tools. Prints "LAB:"
# lines for the test; each VM's console log follows with a prefix ("PVH| ", "BLK| ", "GEN| ").
#   host.sh scsi|blk|generic...
mount -t tmpfs tmp /tmp
mkdir -p /run /mnt && mount -t tmpfs run /run
B=/opt/bulkhead
G=/opt/guests

# PVH vmlinux, two vCPUs, virtio-scsi with three LUNs, interactive serial console.
scsi() {
truncate -s 64M /tmp/rw.img
dd if=/dev/urandom of=/tmp/ro.img bs=1M count=4 2>/dev/null
md5sum < /tmp/ro.img > /tmp/ro.md5
truncate -s 8G /tmp/sparse.img
$B/bulkhead run --name pvh --kernel $G/cloud-vmlinux --initrd $G/scsi.gz --memory 256M --cpus 2 \
  --disk /tmp/rw.img --disk /tmp/ro.img,ro --disk /tmp/sparse.img --cmdline "console=ttyS0" \
  --serial unix=/tmp/pvh.sock > /tmp/pvh.err 2>&1 &
vm=$!
$B/bh-lab-console /tmp/pvh.sock /tmp/pvh.log 300 expect=L2-SHELL-READY 'send=echo typed-$((6*7))' \
  expect=typed-42 'send=poweroff -f' eof
rc=$?
echo "LAB: pvh console $rc"
[ $rc -eq 0 ] || kill $vm
wait $vm
echo "LAB: pvh exit $?"
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
timeout 300 $B/bulkhead run --name blk --kernel $G/cloud-vmlinuz --initrd $G/blk.gz --memory 256M --cpus 2 \
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
timeout 300 $B/bulkhead run --name generic --kernel $G/generic-vmlinuz --initrd $G/generic.gz --memory 256M \
  --cmdline "console=ttyS0" --serial file=/tmp/generic.log > /tmp/generic.err 2>&1
echo "LAB: generic exit $?"
sed 's/^/GEN| /' /tmp/generic.log /tmp/generic.err
}

for vm in "$@"; do $vm; done
