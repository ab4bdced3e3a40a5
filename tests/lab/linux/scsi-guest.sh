# L2: Debian's cloud kernel on Bulkhead, booted through PVH with two vCPUs. Its disks are on
# Bulkhead's virtio-scsi process: LUN 0 a blank image, LUN 1 a read-only one, LUN 2 a sparse
# 8 GiB one. Ends in an interactive shell that the test types into over the console socket.
# Linux scans LUNs in parallel, so sdX names follow no order: find each disk by its LUN.
lun() { ls /sys/class/scsi_disk/0:0:0:$1/device/block; }
echo "L2: nproc $(nproc)"
awk '/IO-APIC|PCI-MSI/ { a += $2; b += $3 } END { print "L2: device interrupts cpu0=" a " cpu1=" b }' /proc/interrupts
echo "L2: disks $(ls /sys/block | tr '\n' ' ')"
rw=$(lun 0) ro=$(lun 1) sparse=$(lun 2)
echo "L2: sparse sectors $(cat /sys/block/$sparse/size), ro disk ro=$(cat /sys/block/$ro/ro), rw disk ro=$(cat /sys/block/$rw/ro)"
/usr/sbin/mkfs.ext4 -q -F -L bulkhead /dev/$rw && echo "L2: mkfs ok"
mkdir -p /mnt && mount -t ext4 /dev/$rw /mnt && echo "L2: mount ok"
seq 1 20000 > /mnt/numbers.txt
echo "written by L2 on bulkhead" > /mnt/hello.txt
mkdir /mnt/dir && dd if=/dev/urandom of=/mnt/dir/random.bin bs=64k count=32 2>/dev/null
echo "L2: random md5 $(md5sum < /mnt/dir/random.bin)"
sync && umount /mnt && echo "L2: umount ok"
if dd if=/dev/zero of=/dev/$ro bs=512 count=1 oflag=direct 2>/dev/null; then echo "L2: ro write succeeded"; else echo "L2: ro write refused"; fi
echo "L2-SHELL-READY"
exec sh
