"""The local cloud's guest image (cloud/guest/build-image.sh) booted as Nova's
libvirt driver boots it: qemu under TCG, direct kernel boot, a config drive
made with genisoimage holding a node's real user data, a tap on a bridge, and
a package mirror (Debian's apt-cacher-ng) on the guest's router. The guest
installs keepalived from the mirror, starts it with our drop-in, and starts it
again by itself after a reboot.

Everything runs in a namespace and on a veth pair of the test's own; nothing
of the local cloud (br-ex, br-int, 172.24.4.0/24) is touched, so it needs no
lock. By hand, with the timings printed:

    sudo venv/bin/python -m tests.test_guest_image
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vip_stack.rendering import (
    KEEPALIVED_DROPIN_PATH,
    VRRP_INTERFACE_CONF_PATH,
    VrrpGroup,
    plan_keepalived,
    render_user_data,
)
from vip_stack.settings import parse_settings

from .conftest import CHECKOUT, _need

pytestmark = pytest.mark.system

BUILD_SCRIPT = CHECKOUT / "cloud" / "guest" / "build-image.sh"
MIRROR_PORT = 3142
# The flavor m1.small's memory.
GUEST_MEMORY_MB = 512
# cloud-init's last line on the console.
FINAL_MESSAGE = re.compile(r"Cloud-init v\. \S+ finished at .* Up ([\d.]+) seconds")
NODE = "kld-vm-1"
PEER = "kld-vm-2"


def run(*command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)


def build_image() -> Path:
    """The image's directory, built once and then taken from the cache."""
    built = run("bash", str(BUILD_SCRIPT), timeout=3600)
    return Path(built.stdout.strip().splitlines()[-1])


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of the benchmarking range that no route of this machine covers."""
    routes = run("ip", "-4", "-o", "route", "show", "table", "all").stdout
    taken = [ipaddress.IPv4Network(m, strict=False) for m in re.findall(r"\b(\d+\.\d+\.\d+\.\d+/\d+)", routes)]
    for third in range(200, 256):
        candidate = ipaddress.IPv4Network(f"198.18.{third}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise RuntimeError("no free /24 in 198.18.200.0-198.18.255.0")


@dataclass
class GuestNetwork:
    """The guest's router in miniature: a bridge in a namespace of our own,
    reached from this machine through a veth pair whose end here is the
    mirror's address, as 172.24.4.1 on br-ex is the local cloud's."""

    namespace: str
    bridge: str
    tap: str
    host_link: str
    subnet: ipaddress.IPv4Network

    @property
    def router(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def guest_address(self) -> str:
        return str(self.subnet.network_address + 11)

    @property
    def peer_address(self) -> str:
        return str(self.subnet.network_address + 22)

    @property
    def vip(self) -> str:
        return str(self.subnet.network_address + 254)


@contextmanager
def guest_network() -> Iterator[GuestNetwork]:
    tag = uuid.uuid4().hex[:6]
    net = GuestNetwork(
        namespace=f"kvg{tag}",
        bridge="kvgbr",
        tap="kvgtap",
        host_link=f"kvg{tag}h",
        subnet=free_subnet(),
    )
    run("ip", "netns", "add", net.namespace)
    try:
        inside = ("ip", "-n", net.namespace)
        run(*inside, "link", "add", net.bridge, "type", "bridge")
        run("ip", "link", "add", net.host_link, "type", "veth", "peer", "name", "kvgup", "netns", net.namespace)
        run(*inside, "link", "set", "kvgup", "master", net.bridge, "up")
        # A persistent tap, made before qemu as libvirt makes one for Nova.
        run(*inside, "tuntap", "add", "dev", net.tap, "mode", "tap")
        run(*inside, "link", "set", net.tap, "master", net.bridge, "up")
        run(*inside, "link", "set", net.bridge, "up")
        run("ip", "addr", "add", f"{net.router}/{net.subnet.prefixlen}", "dev", net.host_link)
        run("ip", "link", "set", net.host_link, "up")
        yield net
    finally:
        # The veth's end here goes with its peer.
        run("ip", "netns", "delete", net.namespace, check=False)
        run("ip", "link", "delete", net.host_link, check=False)


@dataclass
class Mirror:
    log_dir: Path

    def transfers(self) -> str:
        log = self.log_dir / "apt-cacher.log"
        return log.read_text() if log.exists() else ""


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def package_mirror(address: str, directory: Path) -> Iterator[Mirror]:
    """Debian's apt-cacher-ng in front of the archive this machine reaches,
    listening on the guest network's router address only, in the foreground
    under this process (there is no systemd)."""
    cache, logs, config = directory / "cache", directory / "log", directory / "config"
    for made in (cache, logs, config):
        made.mkdir()
    # Not Debian's /etc/apt-cacher-ng: its remapping sends deb.debian.org's
    # requests to the backend chosen at install (ftp.debian.org), which this
    # machine may not reach. Without it, each request goes where its URL says.
    (config / "acng.conf").write_text("# Every setting is on the command line.\n")
    process = subprocess.Popen(
        [
            "apt-cacher-ng",
            "-c",
            str(config),
            "ForeGround=1",
            f"BindAddress={address}",
            f"Port={MIRROR_PORT}",
            f"CacheDir={cache}",
            f"LogDir={logs}",
            f"SocketPath={directory / 'socket'}",
            f"PidFile={directory / 'pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(logs / "stderr").open("w"),
    )
    try:
        deadline = time.monotonic() + 20
        while run("ss", "-ltnH", f"src {address}:{MIRROR_PORT}").stdout.strip() == "":
            assert process.poll() is None, f"apt-cacher-ng exited: {(logs / 'stderr').read_text()}"
            assert time.monotonic() < deadline, "apt-cacher-ng does not listen"
            time.sleep(0.2)
        yield Mirror(log_dir=logs)
    finally:
        stop(process)


def config_drive(directory: Path, net: GuestNetwork, mac: str, public_key: str, user_data: str, mirror: str) -> Path:
    """An ISO 9660 config drive labelled config-2, laid out and made as Nova's
    configdrive module makes it."""
    instance = str(uuid.uuid4())
    latest = directory / "drive" / "openstack" / "latest"
    latest.mkdir(parents=True)
    meta_data = {
        "uuid": instance,
        "name": NODE,
        "hostname": NODE,
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": uuid.uuid4().hex,
        "public_keys": {"kvg": public_key},
        "keys": [{"name": "kvg", "type": "ssh", "data": public_key}],
    }
    network_data = {
        "links": [
            {"id": "tapkvg", "vif_id": str(uuid.uuid4()), "type": "ovs", "mtu": 1500, "ethernet_mac_address": mac}
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": "tapkvg",
                "ip_address": net.guest_address,
                "netmask": str(net.subnet.netmask),
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": net.router}],
                "network_id": str(uuid.uuid4()),
            }
        ],
        "services": [],
    }
    # What Nova's [api] vendordata_jsonfile_path puts here: the cloud's own
    # cloud-config, beside the user's, here naming the mirror of this test.
    vendor_data = {
        "cloud-init": "#cloud-config\n"
        + json.dumps(
            {
                "apt": {
                    "primary": [{"arches": ["default"], "uri": f"{mirror}/debian"}],
                    "security": [{"arches": ["default"], "uri": f"{mirror}/debian-security"}],
                }
            }
        )
    }
    (latest / "meta_data.json").write_text(json.dumps(meta_data))
    (latest / "network_data.json").write_text(json.dumps(network_data))
    (latest / "vendor_data.json").write_text(json.dumps(vendor_data))
    (latest / "user_data").write_text(user_data)
    iso = directory / "disk.config"
    # nova/virt/configdrive.py's genisoimage options.
    run(
        "genisoimage",
        "-o",
        str(iso),
        "-ldots",
        "-allow-lowercase",
        "-allow-multidot",
        "-l",
        "-publisher",
        "keepalived-vip",
        "-quiet",
        "-J",
        "-r",
        "-V",
        "config-2",
        str(directory / "drive"),
    )
    return iso


def node_user_data(net: GuestNetwork) -> str:
    """The product's user data for the first node, rendered by its own
    functions from settings whose subnet is the test's."""
    settings = parse_settings(
        {
            "flavorName": "m1.small",
            "sshAllowedCidrs": ["198.51.100.0/24"],
            "vrrpPassword": "s3cr3t",
            "subnetCidr": str(net.subnet),
            "vipAddress": net.vip,
        }
    )
    addresses = {NODE: net.guest_address, PEER: net.peer_address}
    configs = plan_keepalived(
        VrrpGroup.of(settings), addresses, str(net.subnet), settings.vrrp_password.get_secret_value()
    )
    return render_user_data(next(c for c in configs if c.router_id == NODE))


@dataclass
class Guest:
    net: GuestNetwork
    console_log: Path
    key: Path
    process: subprocess.Popen
    mirror: Mirror
    started: float
    figures: dict[str, float] = field(default_factory=dict)

    def console(self) -> str:
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

    def ssh(self, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run(
            "ssh",
            "-i",
            str(self.key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "BatchMode=yes",
            f"debian@{self.net.guest_address}",
            command,
            check=check,
            timeout=timeout,
        )

    def wait_for(self, what: str, ready, timeout: float) -> float:
        """Seconds since boot until ready() holds; fails with the console's end."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                pytest.fail(f"qemu exited ({self.process.returncode}) before {what}:\n{self.console()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout:.0f} s; console:\n{self.console()[-3000:]}")
            time.sleep(1)
        return time.monotonic() - self.started

    def wait_for_ssh(self, timeout: float) -> float:
        return self.wait_for("SSH", lambda: self.ssh("true", check=False, timeout=30).returncode == 0, timeout)


@contextmanager
def booted_guest() -> Iterator[Guest]:
    """The image booted from a copy-on-write overlay, as Nova boots it,
    until cloud-init has finished; everything stopped and removed after."""
    image = build_image()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kvg-")))
        net = stack.enter_context(guest_network())
        mirror_dir = work / "mirror"
        mirror_dir.mkdir()
        mirror = stack.enter_context(package_mirror(net.router, mirror_dir))
        key = work / "id_ed25519"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3))
        drive = config_drive(
            work,
            net,
            mac,
            (work / "id_ed25519.pub").read_text().strip(),
            node_user_data(net),
            f"http://{net.router}:{MIRROR_PORT}/deb.debian.org",
        )
        overlay = work / "disk"
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "root.img"), "-F", "raw", str(overlay))
        console_log = work / "console.log"
        command = [
            "ip", "netns", "exec", net.namespace,
            "qemu-system-x86_64",
            # KVM opens here but its guests hang (docs): Nova's virt_type=qemu.
            "-accel", "tcg",
            "-machine", "pc",
            # What libvirt gives qemu: no default devices (a second CD-ROM, a VGA card).
            "-nodefaults",
            # DevStack's CPU model under TCG.
            "-cpu", "Nehalem",
            "-m", str(GUEST_MEMORY_MB),
            "-smp", "1",
            "-display", "none",
            "-monitor", "none",
            "-serial", f"file:{console_log}",
            "-kernel", str(image / "vmlinuz"),
            "-initrd", str(image / "initrd.img"),
            # The image's os_command_line (see build-image.sh), as Nova passes it.
            "-append", (image / "cmdline").read_text().strip(),
            "-drive", f"file={overlay},if=virtio,format=qcow2",
            # Nova's config drive on the pc machine: an IDE cdrom.
            "-drive", f"file={drive},media=cdrom,if=ide,format=raw,readonly=on",
            "-netdev", f"tap,id=port,ifname={net.tap},script=no,downscript=no",
            # The first free PCI slot, as libvirt gives it a guest without
            # graphics: the guest names it ens2.
            "-device", f"virtio-net-pci,netdev=port,mac={mac}",
        ]  # fmt: skip
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=(work / "qemu.stderr").open("w"))
        stack.callback(stop, process)
        guest = Guest(net, console_log, key, process, mirror, started)
        guest.figures["cloud-init done (s)"] = guest.wait_for(
            "cloud-init final message", lambda: FINAL_MESSAGE.search(guest.console()) is not None, 1200
        )
        guest.wait_for_ssh(120)
        yield guest
        if os.environ.get("KVG_KEEP"):
            shutil.copy(console_log, os.environ["KVG_KEEP"])


@pytest.fixture(scope="module")
def guest() -> Iterator[Guest]:
    _need("qemu-system-x86_64", "qemu-img", "genisoimage", "apt-cacher-ng", "mmdebstrap", "mke2fs", "ssh", root=True)
    with booted_guest() as booted:
        yield booted
        print()
        for name, value in booted.figures.items():
            print(f"guest image: {name}: {value:.1f}")


def keepalived_runs_with_our_drop_in(guest: Guest) -> None:
    assert guest.ssh("systemctl is-active keepalived", check=False).stdout.strip() == "active"
    drop_ins = guest.ssh("systemctl show keepalived -p DropInPaths").stdout
    assert KEEPALIVED_DROPIN_PATH in drop_ins
    interface = guest.ssh(f"sudo cat {VRRP_INTERFACE_CONF_PATH}").stdout
    default_dev = guest.ssh("ip -4 route show default").stdout.split(" dev ")[1].split()[0]
    assert interface.strip() == f"$VRRP_INTERFACE={default_dev}"
    # Alone on its network, the first node is master and holds the VIP.
    deadline = time.monotonic() + 30
    while guest.net.vip not in guest.ssh(f"ip -4 -o addr show dev {default_dev}").stdout:
        assert time.monotonic() < deadline, guest.ssh("sudo journalctl -u keepalived --no-pager", check=False).stdout
        time.sleep(1)


def test_cloud_init_installs_keepalived_from_the_mirror_and_starts_it(guest):
    console = guest.console()
    assert FINAL_MESSAGE.search(console)
    status = guest.ssh("cloud-init status --wait --long", check=False, timeout=300).stdout
    assert "status: done" in status, status
    assert "install ok installed" in guest.ssh("dpkg-query -W -f='${Status}' keepalived").stdout
    assert re.search(r"keepalived_[^ ]+_amd64\.deb", guest.mirror.transfers())
    keepalived_runs_with_our_drop_in(guest)
    blame = guest.ssh("sudo cloud-init analyze blame").stdout
    install = re.search(r"([\d.]+)s \(modules-final/config-package[-_]update[-_]upgrade[-_]install\)", blame)
    assert install, blame
    guest.figures["package_update and keepalived install (s)"] = float(install.group(1))
    memory = guest.ssh("free -m").stdout.splitlines()[1].split()
    guest.figures["guest memory used (MB)"] = float(memory[2])
    status = Path(f"/proc/{qemu_pid(guest)}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    guest.figures["qemu resident (MB)"] = rss_kb / 1024


def test_the_guest_checksums_its_own_tcp_for_the_netdev_datapath(guest):
    dev = guest.ssh("ip -4 route show default").stdout.split(" dev ")[1].split()[0]
    features = guest.ssh(f"/usr/sbin/ethtool -k {dev}").stdout
    for feature in ("tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload"):
        assert f"{feature}: off" in features, features


def test_keepalived_comes_back_by_itself_after_a_reboot(guest):
    boot_id = guest.ssh("cat /proc/sys/kernel/random/boot_id").stdout
    guest.ssh("sudo systemctl reboot", check=False)
    rebooted = time.monotonic()
    deadline = rebooted + 600
    while guest.ssh("cat /proc/sys/kernel/random/boot_id", check=False, timeout=30).stdout in ("", boot_id):
        assert time.monotonic() < deadline, guest.console()[-3000:]
        time.sleep(2)
    guest.figures["reboot to SSH (s)"] = time.monotonic() - rebooted
    guest.ssh("systemctl is-system-running --wait", check=False, timeout=300)
    keepalived_runs_with_our_drop_in(guest)


def qemu_pid(guest: Guest) -> int:
    # ip netns exec execs qemu in place: the child is qemu itself.
    return guest.process.pid


if __name__ == "__main__":
    with booted_guest() as booted:
        for check in (
            test_cloud_init_installs_keepalived_from_the_mirror_and_starts_it,
            test_the_guest_checksums_its_own_tcp_for_the_netdev_datapath,
            test_keepalived_comes_back_by_itself_after_a_reboot,
        ):
            check(booted)
            print(f"ok: {check.__name__}")
        for name, value in booted.figures.items():
            print(f"guest image: {name}: {value:.1f}")
