# L2: Debian's cloud kernel on Bulkhead with its own virtio_balloon driver, in 512 MiB with a
# balloon target of 384M and free page reporting (Linux reports only while more than 64 MiB
# above the low watermark are free, so the VM is larger than the balloon needs). L1 measures guest RAM on its side at each
# L2-... marker and answers "go". First L2 fills memory (so the host holds it), then loads the
# driver, which inflates to the target; then it fills and frees memory with the balloon
# inflated (free page reporting returns it); then L1 sets a new target with `bulkhead ctl
# balloon 256M` and the driver, told by a configuration interrupt, inflates to it; then L2
# unloads the driver (which deflates) and uses more memory than it had while inflated,
# checking what it wrote.
kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
mkdir -p /mnt && mount -t tmpfs -o size=440M fill /mnt
before=$(kib MemTotal)
echo "L2: memtotal $before"
dd if=/dev/zero of=/mnt/fill bs=1M count=300 2>/dev/null && rm /mnt/fill
echo "L2-TOUCHED"
read go
insmod /lib/modules/virtio_balloon.ko || echo "L2: insmod virtio_balloon failed"
echo "L2: balloon features $(cat /sys/bus/virtio/drivers/virtio_balloon/virtio*/features)"
for i in $(seq 300); do [ "$(kib MemTotal)" -le $((before - 128 * 1024)) ] && break; sleep 1; done
echo "L2: memtotal inflated $(kib MemTotal)"
echo "L2-INFLATED"
read go
dd if=/dev/zero of=/mnt/fill bs=1M count=128 2>/dev/null
echo "L2-FILLED"
read go
rm /mnt/fill
sleep 20  # page reporting waits 2 s, then reports free 2 MiB blocks in batches
echo "L2-FREED"
read go
for i in $(seq 300); do [ "$(kib MemTotal)" -le $((before - 256 * 1024)) ] && break; sleep 1; done
sleep 1  # the driver writes `actual` after its last batch
echo "L2: memtotal ctl-inflated $(kib MemTotal) of $before"
echo "L2-CTL-INFLATED"
read go
rmmod virtio_balloon || echo "L2: rmmod virtio_balloon failed"
echo "L2: memtotal deflated $(kib MemTotal)"
sum=$(dd if=/dev/urandom bs=1M count=384 2>/dev/null | tee /mnt/check | md5sum)
if [ "$(md5sum < /mnt/check)" = "$sum" ]; then echo "L2: 384 MiB written and read back"; else echo "L2: memory check failed"; fi
rm /mnt/check
