# L2: Debian's cloud kernel on Bulkhead with two virtio-net NICs and its own virtio_net
# driver: eth0 on user-mode networking (DHCP; L1 is 10.0.2.2), eth1 on a tap of L1's with two
# queue pairs (static 10.0.3.2; L1 is 10.0.3.1). Fetches a file from L1 over each, serves one
# for L1 to fetch (through a forwarded port and through the tap), then waits for L1's word.
ip link set lo up && ip link set eth0 up && ip link set eth1 up
echo "L2: nics $(ls /sys/class/net | tr '\n' ' ')"
echo "L2: eth0 mtu $(cat /sys/class/net/eth0/mtu), eth1 queues $(ls /sys/class/net/eth1/queues | tr '\n' ' ')"
udhcpc -i eth0 -n -q -s /udhcpc.sh || echo "L2: no dhcp"
ip addr add 10.0.3.2/24 dev eth1
timeout 120 wget -q -O /tmp/user.bin http://10.0.2.2:8000/blob && echo "L2: user blob $(md5sum < /tmp/user.bin)"
timeout 120 wget -q -O /tmp/tap.bin http://10.0.3.1:8000/blob && echo "L2: tap blob $(md5sum < /tmp/tap.bin)"
ping -c 2 -W 5 10.0.3.1 > /dev/null && echo "L2: ping over the tap ok"
mkdir -p /www && head -c 12 /dev/urandom | md5sum | cut -c1-32 > /www/guest.txt
httpd -p 80 -h /www && echo "L2: serving $(cat /www/guest.txt)"
awk '/virtio/ && /MSI/ { n++ } END { print "L2: virtio MSI-X vectors " n }' /proc/interrupts
echo "L2-NET-READY"
for i in $(seq 120); do timeout 10 wget -q -O /tmp/word http://10.0.2.2:8000/word 2>/dev/null && break; sleep 1; done
echo "L2: L1 says $(cat /tmp/word)"
