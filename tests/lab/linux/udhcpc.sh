#!/bin/sh
# busybox udhcpc's script for the L2 guests (installed as /udhcpc.sh): configures the lease.
[ "$1" = bound ] || exit 0
ip addr add $ip/$mask dev $interface
ip route add default via $router
echo "L2: dhcp $ip via $router dns $dns"
