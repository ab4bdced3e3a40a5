# L2: Debian's generic kernel (the one with ata_piix and e1000) on Bulkhead.
echo "L2: generic up $(uname -r), nproc $(nproc)"
touch /tmp/lab-reboot  # ends with reboot -f: the machine's reset ends the VM
