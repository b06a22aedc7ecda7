"""Debian's OpenSSH server on the lab's hosts, so the check command can be
pointed at the lab exactly as at a deployment: the jumphost on its address
(standing in for the floating IP), the nodes behind it.

Each host's sshd runs inside the host's namespaces with host keys generated
there (in its overlay), and the image's default user (created by cloud-init)
accepts the given public key. `systemctl` on a node is the lab's stand-in,
since no systemd runs in a namespace.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .hosts import NodeHost

LAB_BIN = "/etc/keepalived-vip-lab/bin"
SSHD_CONFIG = "/etc/keepalived-vip-lab/sshd_config"
# The stand-in is this package (standard library only), copied whole onto each
# host: a lab VM sees neither a checkout under /tmp (its /tmp is its own) nor
# a virtualenv.
STANDIN_PACKAGE = Path(__file__).resolve().parent
STANDIN_PYTHONPATH = "/etc/keepalived-vip-lab/python"
SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAB_PATH = f"{LAB_BIN}:{DEFAULT_PATH}"
HOST_KEYS_MADE = "/etc/keepalived-vip-lab/host-keys-made"
# Where `systemctl enable keepalived` leaves its mark, as systemd does (WantedBy=multi-user.target).
ENABLED_UNIT_LINK = "/etc/systemd/system/multi-user.target.wants/keepalived.service"


def default_user(host: NodeHost) -> str:
    """The user cloud-init made from the image's default_user (debian, ubuntu...)."""
    listing = host.run(
        [
            "sh",
            "-c",
            "grep -l . /etc/sudoers.d/90-cloud-init-users && "
            "sed -n 's/^\\([a-z_][a-z0-9_-]*\\) ALL=.*/\\1/p' "
            "/etc/sudoers.d/90-cloud-init-users",
        ],
        check=False,
    ).stdout.split()
    users = [word for word in listing if not word.startswith("/")]
    if not users:
        raise RuntimeError(f"{host.name}: cloud-init created no default user")
    return users[0]


def serve_ssh(host: NodeHost, address: str, public_key: str | None, track) -> str:
    """Starts sshd on the host; returns the login that accepts public_key.

    public_key None: the keys are cloud-init's, as on a VM booted with a key
    pair (its ssh module made the host keys and authorized the instance's key
    for the default user) and are left as they are."""
    user = default_user(host)
    (host.run_dir / "sshd").mkdir(mode=0o755, exist_ok=True)
    if public_key is not None:
        _own_keys(host, user, public_key)
        print_host_keys_on_console(host)
    install_systemctl(host)
    host.write_file(
        SSHD_CONFIG,
        "\n".join(
            [
                f"ListenAddress {address}",
                "HostKey /etc/ssh/ssh_host_ed25519_key",
                "HostKey /etc/ssh/ssh_host_rsa_key",
                "PidFile /run/sshd.pid",
                # PAM lets a cloud-init user with a locked password log in with a key, as on a VM.
                "UsePAM yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding yes",
                f"SetEnv PATH={LAB_PATH}",
                "",
            ]
        ),
    )
    track(host.popen(["/usr/sbin/sshd", "-D", "-e", "-f", SSHD_CONFIG], "sshd.log"))
    return user


def _own_keys(host: NodeHost, user: str, public_key: str) -> None:
    """Host keys of the host's own and public_key authorized for user."""
    # Host keys of its own, as a new VM makes at first boot (the machine's
    # would show through the /etc overlay otherwise); a reboot keeps them.
    # Done inside the host: files made behind a mounted overlay's back may
    # stay unseen in it.
    host.run(
        [
            "sh",
            "-c",
            f"test -e {HOST_KEYS_MADE} || {{ rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub"
            f" && ssh-keygen -A && mkdir -p {shlex.quote(str(Path(HOST_KEYS_MADE).parent))}"
            f" && touch {HOST_KEYS_MADE}; }}",
        ]
    )
    home = host.run(["sh", "-c", f"getent passwd {shlex.quote(user)} | cut -d: -f6"]).stdout.strip()
    host.run(["install", "-d", "-m", "0700", "-o", user, "-g", user, f"{home}/.ssh"])
    host.write_file(f"/etc/keepalived-vip-lab/{user}.pub", public_key.strip() + "\n")
    host.run(
        [
            "install",
            "-m",
            "0600",
            "-o",
            user,
            "-g",
            user,
            f"/etc/keepalived-vip-lab/{user}.pub",
            f"{home}/.ssh/authorized_keys",
        ]
    )


def print_host_keys_on_console(host: NodeHost) -> None:
    """The host's public keys on its console between the lines cloud-init's
    keys-to-console prints, as a cloud image shows them at first boot: the
    source a user (and the check) verifies a new host's key against."""
    keys = host.run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]).stdout.strip()
    with host.console.open("a") as console:
        console.write(f"-----BEGIN SSH HOST KEY KEYS-----\n{keys}\n-----END SSH HOST KEY KEYS-----\n")


def install_systemctl(host: NodeHost) -> None:
    """The lab's systemctl stand-in on the host, first in the PATH of logins
    and of sudo, as the real one is on a VM."""
    # A sealed host (a lab VM) sees the machine's own Python, not a virtualenv's
    # (whose interpreter may live in a home it does not see).
    python = SYSTEM_PYTHON if host.sealed else sys.executable
    # is-active is answered here, so that any user may ask, as with systemd;
    # starting and stopping take root (sudo) and the lab's Python. What else
    # user data asks of systemctl is answered here too (daemon-reload; enable,
    # disable, is-enabled): enable makes the link systemd makes, which a lab
    # VM's boot reads (vm.py).
    systemctl = "\n".join(
        [
            "#!/bin/sh",
            'if [ "$1" = is-active ] && [ "${2%.service}" = keepalived ]; then',
            "    pid=$(cat /run/keepalived.pid 2>/dev/null)",
            '    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then echo active; exit 0; fi',
            "    echo inactive; exit 3",
            "fi",
            '[ "$1" = daemon-reload ] && [ $# -eq 1 ] && exit 0',
            'case "$1" in enable|disable|is-enabled)',
            "    verb=$1; shift; now=",
            '    [ "$1" = --now ] && { now=1; shift; }',
            '    if [ $# -eq 1 ] && [ "${1%.service}" = keepalived ]; then',
            f"        link={ENABLED_UNIT_LINK}",
            '        case "$verb" in',
            "            enable)",
            '                mkdir -p "${link%/*}" && ln -sfn /lib/systemd/system/keepalived.service "$link" || exit 1',
            '                [ -z "$now" ] || exec "$0" start keepalived ;;',
            "            disable)",
            '                rm -f "$link" || exit 1',
            '                [ -z "$now" ] || exec "$0" stop keepalived ;;',
            "            is-enabled)",
            '                if [ -L "$link" ]; then echo enabled; else echo disabled; exit 1; fi ;;',
            "        esac",
            "        exit 0",
            "    fi",
            '    set -- "$verb" "$@" ;;',
            "esac",
            f'PYTHONPATH={STANDIN_PYTHONPATH} exec {shlex.quote(python)} -m {STANDIN_PACKAGE.name}.systemctl "$@"',
            "",
        ]
    )
    for module in STANDIN_PACKAGE.glob("*.py"):
        host.write_file(f"{STANDIN_PYTHONPATH}/{STANDIN_PACKAGE.name}/{module.name}", module.read_text())
    host.write_file(f"{LAB_BIN}/systemctl", systemctl, 0o755)
    host.write_file("/etc/sudoers.d/keepalived-vip-lab", f'Defaults secure_path="{LAB_PATH}"\n', 0o440)
