# L2: Debian's generic kernel on Bulkhead in full-virtualization mode, as a guest without
# virtio drivers sees it: its disks and CD-ROM on Bulkhead's IDE controller (Linux's
# ata_piix, with DMA), its NIC an e1000 on user-mode networking, its console ttyS0.
# The primary master: ext4, checked by L1 afterwards; the primary slave: a sparse 200 GiB disk,
# written beyond 128 GiB (48-bit commands); the secondary master: the test's ISO. Linux's sd
# probes disks in parallel, so sdX names follow no order: find each disk by its ATA position.
disk() { ls /sys/class/scsi_disk/0:0:$1:0/device/block; }
echo "L2: disks $(echo $(ls /sys/block))"
master=$(disk 0) slave=$(disk 1)
echo "L2: slave sectors $(cat /sys/block/$slave/size) sr0 ro $(cat /sys/block/sr0/ro)"
echo "L2: master driver $(basename $(readlink /sys/block/$master/device/../../../../driver))"
echo "L2: transfer modes $(cat /sys/class/ata_device/dev1.0/xfer_mode) $(cat /sys/class/ata_device/dev1.1/xfer_mode) $(cat /sys/class/ata_device/dev2.0/xfer_mode)"
/usr/sbin/mkfs.ext4 -q -F -L bulkhead /dev/$master && echo "L2: mkfs ok"
mkdir -p /mnt /cdrom && mount -t ext4 /dev/$master /mnt && echo "L2: mount ok"
echo "written by L2 on bulkhead IDE" > /mnt/hello.txt
seq 1 20000 > /mnt/numbers.txt
dd if=/dev/urandom of=/mnt/random.bin bs=64k count=32 2>/dev/null
echo "L2: random md5 $(md5sum < /mnt/random.bin)"
sync && umount /mnt && echo "L2: umount ok"
# 1 MiB at 150 GiB on the sparse disk, past the reach of 28-bit addresses.
dd if=/dev/urandom of=/tmp/chunk bs=64k count=16 2>/dev/null
dd if=/tmp/chunk of=/dev/$slave bs=64k seek=2457600 oflag=direct 2>/dev/null && echo "L2: lba48 write ok"
dd if=/dev/$slave of=/tmp/back bs=64k skip=2457600 count=16 iflag=direct 2>/dev/null
cmp -s /tmp/chunk /tmp/back && echo "L2: lba48 read back ok"
echo "L2: lba48 md5 $(md5sum < /tmp/chunk)"
mount -t iso9660 -o ro /dev/sr0 /cdrom && echo "L2: cdrom mount ok"
echo "L2: cdrom blob $(md5sum < /cdrom/blob.bin)"
umount /cdrom
ip link set lo up && ip link set eth0 up
for i in $(seq 30); do [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break; sleep 1; done
udhcpc -i eth0 -n -q -s /udhcpc.sh || echo "L2: no dhcp"
timeout 120 wget -q -O /tmp/user.bin http://10.0.2.2:8000/blob && echo "L2: user blob $(md5sum < /tmp/user.bin)"
awk '/ata_piix|eth0|ttyS0/ { print "L2: interrupts " $0 }' /proc/interrupts
