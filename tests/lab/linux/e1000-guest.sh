# L2: Debian's generic kernel on Bulkhead in full-virtualization mode, with two Intel e1000
# NICs and Linux's own e1000 driver: eth0 on user-mode networking (DHCP; L1 is 10.0.2.2),
# eth1 on a tap of L1's (static 10.0.3.2; L1 is 10.0.3.1). Fetches a file over each, then
# reports eth1's counters for L1 to compare with its tap's.
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up && ip link set eth0 up && ip link set eth1 up
echo "L2: nics $(echo $(ls /sys/class/net)) driver $(basename $(readlink /sys/class/net/eth0/device/driver))"
for i in $(seq 30); do [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break; sleep 1; done
echo "L2: eth0 carrier $(cat /sys/class/net/eth0/carrier) speed $(cat /sys/class/net/eth0/speed)"
udhcpc -i eth0 -n -q -s /udhcpc.sh || echo "L2: no dhcp"
ip addr add 10.0.3.2/24 dev eth1
for i in $(seq 30); do [ "$(cat /sys/class/net/eth1/carrier 2>/dev/null)" = 1 ] && break; sleep 1; done
timeout 120 wget -q -O /tmp/user.bin http://10.0.2.2:8000/blob && echo "L2: user blob $(md5sum < /tmp/user.bin)"
timeout 120 wget -q -O /tmp/tap.bin http://10.0.3.1:8000/blob && echo "L2: tap blob $(md5sum < /tmp/tap.bin)"
ping -c 2 -W 5 10.0.3.1 > /dev/null && echo "L2: ping over the tap ok"
awk '/eth0|eth1/ { print "L2: interrupts " $0 }' /proc/interrupts
sleep 1
s=/sys/class/net/eth1/statistics
echo "L2: eth1 counters rx $(cat $s/rx_packets) tx $(cat $s/tx_packets) errors $(cat $s/rx_errors)/$(cat $s/tx_errors)"
