# L2 of the lab's boot diagnostic (host.sh boots): reaching user space is all it checks.
echo L2-BOOTED
