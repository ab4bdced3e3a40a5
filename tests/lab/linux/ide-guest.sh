# L2: Debian's generic kernel on Bulkhead in full-virtualization mode, as a guest without
# virtio drivers sees it: its disks and CD-ROM on Bulkhead's IDE controller (Linux's
# ata_piix, with DMA), its NIC an e1000 on user-mode networking, its console ttyS0.
# Then L1 kills bh-ide six times while L2 writes with fsync and reads back on the slave disk:
# ata_piix must see no error. The primary master: ext4, checked by L1 afterwards; the primary slave: a sparse 200 GiB disk,
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
# Crash recovery: rounds of 8 MiB written with fsync and read back directly (DMA), below the
# 150 GiB chunk, for at least 25 s while L1 kills bh-ide (host.sh). Whatever libata logs about a
# failed, timed-out or reset command from here on counts as an error.
dd if=/dev/urandom of=/tmp/src bs=1M count=8 2>/dev/null
want=$(md5sum < /tmp/src)
logged=$(dmesg | wc -l)
echo "L2-IDE-WRITING"
start=$(cut -d. -f1 /proc/uptime) round=0
while [ $round -lt 3 ] || [ $(($(cut -d. -f1 /proc/uptime) - start)) -lt 25 ]; do
  round=$((round + 1))
  at=$(((round % 4) * 8))
  dd if=/tmp/src of=/dev/$slave bs=1M seek=$at conv=fsync oflag=direct 2>/dev/null || echo "L2: ide round $round write failed"
  got=$(dd if=/dev/$slave bs=1M skip=$at count=8 iflag=direct 2>/dev/null | md5sum)
  if [ "$got" = "$want" ]; then echo "L2: ide round $round verifies"; else echo "L2: ide round $round differs"; fi
done
echo "L2: ide rounds $round"
errors=$(dmesg | tail -n +$((logged + 1)) | grep -iE 'ata[0-9]|sd[a-z]|i/o error' | grep -iE 'error|exception|failed|timeout|reset|abort')
[ -n "$errors" ] && echo "$errors" | sed 's/^/L2: kernel says: /'
echo "L2: ide kernel errors $(printf '%s' "$errors" | grep -c .)"
ip link set lo up && ip link set eth0 up
for i in $(seq 30); do [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break; sleep 1; done
udhcpc -i eth0 -n -q -s /udhcpc.sh || echo "L2: no dhcp"
timeout 120 wget -q -O /tmp/user.bin http://10.0.2.2:8000/blob && echo "L2: user blob $(md5sum < /tmp/user.bin)"
awk '/ata_piix|eth0|ttyS0/ { print "L2: interrupts " $0 }' /proc/interrupts
