# L2: Debian's cloud kernel writes, flushes and reads back its virtio-scsi disk, round after
# round, while L1 kills the disk's device process again and again; L1 says "go" when it is
# done. Then the same with HTTP downloads over virtio-net while L1 kills the NIC's process.
# Bulkhead restarts the process and the new one resubmits what the dead one left in flight:
# Linux must see no I/O error and read back what it wrote. Then the serial port's process.
disk=$(ls /sys/class/scsi_disk/0:0:0:0/device/block)
dd if=/dev/urandom of=/tmp/src bs=1M count=24 2>/dev/null
want=$(md5sum < /tmp/src)
echo "L2-WRITING"
(
  round=0
  while [ ! -e /tmp/stop ]; do
    round=$((round + 1))
    at=$(( (round % 4) * 24 ))
    dd if=/tmp/src of=/dev/$disk bs=1M seek=$at conv=fsync oflag=direct 2>/dev/null || echo "L2: round $round write failed"
    got=$(dd if=/dev/$disk bs=1M skip=$at count=24 iflag=direct 2>/dev/null | md5sum)
    if [ "$got" = "$want" ]; then echo "L2: round $round verifies"; else echo "L2: round $round differs"; fi
  done
  echo $round > /tmp/rounds
) &
read go
touch /tmp/stop
wait
echo "L2: rounds $(cat /tmp/rounds)"

# Then the network: HTTP downloads from L1 through user-mode networking, round after round,
# while L1 kills the NIC's device process; TCP carries on across each restart.
ip link set lo up && ip link set eth0 up
udhcpc -i eth0 -n -q -s /udhcpc.sh || echo "L2: no dhcp"
rm -f /tmp/stop
echo "L2-FETCHING"
(
  round=0
  while [ ! -e /tmp/stop ]; do
    round=$((round + 1))
    if timeout 120 wget -q -O /tmp/blob http://10.0.2.2:8000/blob; then echo "L2: fetch $round $(md5sum < /tmp/blob)"
    else echo "L2: fetch $round failed"; fi
  done
  echo $round > /tmp/fetches
) &
read go
touch /tmp/stop
wait
echo "L2: fetches $(cat /tmp/fetches)"
# What the SCSI and block layers log when a command fails, times out or is aborted.
errors=$(dmesg | grep -iE 'sd[a-z]|scsi|blk_|i/o error|virtio' | grep -iE 'error|abort|reset|timing out|offline')
[ -n "$errors" ] && echo "$errors" | sed 's/^/L2: kernel says: /'
echo "L2: kernel errors $(printf '%s' "$errors" | grep -c .)"

# Last, the serial port: L1 kills its process three times while the shell on ttyS0 prints,
# connects to the console again and types a command the shell must still run.
echo "L2-SERIAL"
sh
poweroff -f
