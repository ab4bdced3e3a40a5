# L2: Debian's cloud kernel on Bulkhead through its bzImage, with a virtio-blk disk served by
# qemu-storage-daemon (a third party's vhost-user back-end).
echo "L2: nproc $(nproc)"
echo "L2: disks $(ls /sys/block | tr '\n' ' ')"
/usr/sbin/mkfs.ext4 -q -F /dev/vda && mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo "L2: blk mount ok"
echo "on virtio-blk from qemu-storage-daemon" > /mnt/blk.txt
sync && umount /mnt && echo "L2: blk umount ok"
