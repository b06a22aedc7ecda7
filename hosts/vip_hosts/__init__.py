"""Machines and daemons on this one machine, made of namespaces: hosts and
VMs booted by real cloud-init, their sshd and systemctl stand-in, the
supervisor that starts and stops daemons, and the teardown of namespaces.
The lab (vip_lab) and the local cloud (vip_cloud) build on it.

Standard library only: the systemctl stand-in is this package, copied onto
each host (sshd.py), where no virtualenv is seen."""
