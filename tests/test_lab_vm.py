"""Lab VMs (vip_hosts.vm) booted as the cloud's compute driver boots them, on an
Open vSwitch of the test's own: the outer end of each VM's NIC is a port of a
userspace (netdev) bridge, as on the cloud's br-int, and an SSH client sits
in a namespace of the test on the same bridge.

The test's ovs-vswitchd runs in a namespace of its own, with the outer ends:
the userspace datapath's devices (ovs-netdev, the bridge's) are named alike
in every ovs-vswitchd, and the cloud's may hold them on the machine."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vip_hosts.boot import BootFailed
from vip_hosts.netns import add_namespace, alive, delete_namespace, list_namespaces, run
from vip_hosts.supervisor import Service, Supervisor, unix_socket_open
from vip_hosts.vm import CloudInitFailed, LabVM, VMSpec

from .conftest import _need

pytestmark = pytest.mark.system

SUBNET = "10.77.0"
CLIENT_ADDRESS = f"{SUBNET}.1"  # the VMs' gateway too
KEEPALIVED_CONF = """\
global_defs {
    router_id lab-vm
}
vrrp_instance VI_1 {
    state BACKUP
    interface ens3
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.77.0.100/24
    }
}
"""


def user_data(runcmd_extra: str = "") -> str:
    """What a stack's user data does, small: a file, keepalived enabled and
    started by runcmd; and a trace of every boot (bootcmd) and of runcmd."""
    return f"""\
#cloud-config
bootcmd:
  - [sh, -c, "echo boot >> /var/lib/lab-vm-boots"]
write_files:
  - path: /etc/lab-vm/hello
    content: "hello from the user data\\n"
  - path: /etc/keepalived/keepalived.conf
    permissions: "0600"
    content: {json.dumps(KEEPALIVED_CONF)}
runcmd:
  - [sh, -c, "echo ran >> /var/lib/lab-vm-runcmd"]
  - [systemctl, daemon-reload]
  - [systemctl, enable, keepalived]
  - [systemctl, restart, keepalived]
{runcmd_extra}"""


class Switch:
    """ovsdb-server and ovs-vswitchd of the test's own (a directory of their
    own, no kernel module; the switch in a namespace of its own) with one
    netdev bridge, and a client namespace plugged into it."""

    def __init__(self, namespace: str, bridge: str, client_namespace: str):
        self.namespace, self.bridge, self.client_namespace = namespace, bridge, client_namespace
        self.dir = Path(tempfile.mkdtemp(prefix="kvt-ovs-"))
        self.env = {**os.environ, "OVS_RUNDIR": str(self.dir), "OVS_DBDIR": str(self.dir), "OVS_LOGDIR": str(self.dir)}
        self.daemons = Supervisor()

    def vsctl(self, *args: str) -> str:
        result = subprocess.run(
            ["ovs-vsctl", "--timeout=10", *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, f"ovs-vsctl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def start(self) -> None:
        database = self.dir / "conf.db"
        run(["ovsdb-tool", "create", str(database), "/usr/share/openvswitch/vswitch.ovsschema"])
        add_namespace(self.namespace)
        socket = self.dir / "db.sock"
        self.daemons.start(
            Service(
                name="ovsdb-server",
                argv=["ovsdb-server", str(database), f"--remote=punix:{socket}", "--pidfile", "--log-file"],
                env=self.env,
                cwd=self.dir,
                log=self.dir / "ovsdb-server.out",
                ready=lambda: unix_socket_open(socket),
                ready_timeout=10,
            )
        )
        self.vsctl("--no-wait", "init")
        self.daemons.start(
            Service(
                name="ovs-vswitchd",
                argv=["ip", "netns", "exec", self.namespace, "ovs-vswitchd", "--disable-system", "--pidfile"]
                + ["--log-file", f"unix:{socket}"],
                env=self.env,
                cwd=self.dir,
                log=self.dir / "ovs-vswitchd.out",
                ready=lambda: (self.dir / "ovs-vswitchd.pid").exists(),
                ready_timeout=10,
            )
        )
        self.vsctl("add-br", self.bridge, "--", "set", "bridge", self.bridge, "datapath_type=netdev")
        # The client: its own namespace, its NIC's outer end a port as a VM's.
        add_namespace(self.client_namespace)
        outer = f"{self.bridge}c"
        switch = ["ip", "-n", self.namespace]
        run([*switch, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", self.client_namespace])
        run(["ip", "netns", "exec", self.client_namespace, "ethtool", "-K", "eth0", "tx", "off"])
        run(["ip", "-n", self.client_namespace, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", "eth0"])
        run(["ip", "-n", self.client_namespace, "link", "set", "eth0", "up"])
        run([*switch, "link", "set", outer, "up"])
        self.vsctl("add-port", self.bridge, outer)

    def plug(self, vm: LabVM) -> None:
        """What the compute driver does with a VM's outer end on br-int."""
        self.vsctl("--may-exist", "add-port", self.bridge, vm.spec.outer)

    def ports(self) -> list[str]:
        return self.vsctl("list-ports", self.bridge).split()

    def ssh(self, key: Path, login: str, address: str, command: str, timeout: float = 30):
        """Runs command over SSH from the client, trying until sshd answers."""
        argv = ["ip", "netns", "exec", self.client_namespace, "ssh", "-F", "/dev/null", "-i", str(key)]
        argv += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        argv += ["-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", f"{login}@{address}", command]
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            # 255: ssh itself failed (no answer yet); anything else is the command's.
            if result.returncode != 255 or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.vsctl("--if-exists", "del-br", self.bridge)
        for namespace in (self.client_namespace, self.namespace):
            if namespace in list_namespaces():
                delete_namespace(namespace)
        self.daemons.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Cloud:
    """The test's switch and the VMs it booted on it."""

    switch: Switch
    workdir: Path
    names: Iterator[str]
    key: Path
    public_key: str
    vms: list[LabVM] = field(default_factory=list)
    # The network namespace (inode) of each VM, to find its processes after it is gone.
    netns_inodes: dict[str, int] = field(default_factory=dict)

    def vm(self, user_data: str, index: int = 11, hostname: str = "lab-vm-1") -> LabVM:
        namespace = next(self.names)
        spec = VMSpec(
            name=hostname,
            instance_id=f"iid-{namespace}",
            namespace=namespace,
            nic="ens3",
            outer=f"{namespace}o",
            mac=f"fa:16:3e:00:00:{index:02x}",
            address_cidr=f"{SUBNET}.{index}/24",
            gateway=CLIENT_ADDRESS,
            mtu=1450,
            user_data=user_data,
            public_key=self.public_key,
            outer_namespace=self.switch.namespace,
        )
        vm = LabVM(self.workdir / namespace, spec)
        self.vms.append(vm)
        vm.create()
        self.netns_inodes[namespace] = os.stat(f"/run/netns/{namespace}").st_ino
        self.switch.plug(vm)
        return vm

    def processes_of(self, vm: LabVM) -> list[int]:
        """Every live process in the VM's network namespace, gone or not."""
        inode = self.netns_inodes[vm.spec.namespace]
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode and alive(entry):
                    found.append(int(entry))
        return found


@pytest.fixture
def cloud(root_namespaces, tmp_path) -> Iterator[Cloud]:
    """A switch and a key pair; afterwards every VM of the test is destroyed
    and none may have left a process behind."""
    _need("ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ethtool", "cloud-init", "sshd", "ssh", root=True)
    names = iter(root_namespaces)
    prefix = next(names)
    switch = Switch(namespace=f"{prefix}s", bridge=f"{prefix}b", client_namespace=f"{prefix}c")
    key = tmp_path / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-vm-test", "-f", str(key)])
    workdir = tmp_path / "instances"
    workdir.mkdir()
    cloud = Cloud(switch, workdir, names, key, (tmp_path / "id_ed25519.pub").read_text())
    try:
        switch.start()
        yield cloud
    finally:
        for vm in cloud.vms:
            vm.destroy()
        switch.stop()
    assert all(not cloud.processes_of(vm) for vm in cloud.vms), "a VM's destroy left processes behind"


def test_a_vm_boots_from_its_user_data_and_lets_the_key_pair_in_over_ssh(cloud):
    vm = cloud.vm(user_data())

    vm.power_on()

    assert vm.cloud_init_status() == "done"
    assert vm.login == "ubuntu", "the image's default user, as on Ubuntu"
    assert vm.host.read_file("/etc/lab-vm/hello") == "hello from the user data\n"
    assert vm.host.read_file("/var/lib/lab-vm-runcmd") == "ran\n"
    session = cloud.switch.ssh(
        cloud.key,
        "ubuntu",
        vm.spec.address,
        "hostname; cat /etc/lab-vm/hello; cloud-init status; systemctl is-enabled keepalived;"
        " systemctl is-active keepalived; ip -o link show ens3",
    )
    assert session.returncode == 0, session.stderr
    lines = session.stdout.splitlines()
    assert lines[:5] == ["lab-vm-1", "hello from the user data", "status: done", "enabled", "active"]
    assert "mtu 1450" in lines[5] and "fa:16:3e:00:00:0b" in lines[5]
    console = vm.console_output()
    assert "running 'modules:final'" in console and "finished at" in console, "cloud-init's output log"


def test_a_reboot_keeps_the_disk_empties_run_and_starts_what_is_enabled_again(cloud):
    vm = cloud.vm(user_data())
    vm.power_on()
    vm.host.run(["sh", "-c", "echo stale > /run/lab-vm-stale && echo kept > /etc/lab-vm/kept"])
    first_holder = vm.host.holder_pid

    vm.reboot(hard=False, timeout=5)

    assert not alive(first_holder), "every process of the old boot is gone"
    assert vm.host.read_file("/run/lab-vm-stale") is None, "/run starts empty, as a tmpfs does"
    assert vm.host.read_file("/etc/lab-vm/kept") == "kept\n"
    assert vm.host.read_file("/var/lib/lab-vm-boots") == "boot\nboot\n", "bootcmd runs at every boot"
    assert vm.host.read_file("/var/lib/lab-vm-runcmd") == "ran\n", "runcmd, once per instance"
    assert vm.cloud_init_status() == "done"
    session = cloud.switch.ssh(cloud.key, "ubuntu", vm.spec.address, "systemctl is-active keepalived")
    assert session.stdout.strip() == "active", "keepalived is enabled: it starts at boot"


def test_another_process_adopts_a_running_vm_powers_it_off_and_on_again(cloud):
    vm = cloud.vm(user_data())
    vm.power_on()
    processes = cloud.processes_of(vm)

    adopted = LabVM.load(vm.root)

    assert adopted.running and adopted.host.holder_pid == vm.host.holder_pid
    assert adopted.spec == vm.spec and adopted.login == "ubuntu"
    adopted.power_off(timeout=5)
    assert not any(alive(pid) for pid in processes), "power off ends every process on the VM"
    assert not vm.running and not LabVM.load(vm.root).running
    nic = run(["ip", "-n", vm.spec.namespace, "-o", "addr", "show", "dev", "ens3"]).stdout
    assert vm.spec.address not in nic, "a VM that is off answers for no address"

    LabVM.load(vm.root).power_on()

    session = cloud.switch.ssh(cloud.key, "ubuntu", vm.spec.address, "systemctl is-active keepalived")
    assert session.stdout.strip() == "active"


def test_destroying_a_vm_leaves_nothing_behind(cloud):
    vm = cloud.vm(user_data())
    vm.power_on()
    holder = vm.host.holder_pid

    LabVM.load(vm.root).destroy()

    assert not alive(holder) and cloud.processes_of(vm) == []
    assert vm.spec.namespace not in list_namespaces()
    assert run([*vm.spec.outside(), "link", "show", "dev", vm.spec.outer], check=False).returncode != 0
    assert not vm.root.exists()


def test_a_failing_runcmd_fails_the_boot_with_the_end_of_cloud_inits_output(cloud):
    vm = cloud.vm(user_data('  - [sh, -c, "echo the user data broke >&2; exit 3"]\n'))

    with pytest.raises(CloudInitFailed) as failure:
        vm.power_on()

    assert isinstance(failure.value, BootFailed)
    message = str(failure.value)
    assert "cloud-init failed" in message and "the user data broke" in message
    assert vm.running, "a VM whose cloud-init failed is up all the same"


def test_nothing_on_a_vm_writes_to_the_machine_outside_its_directory(cloud):
    vm = cloud.vm(user_data())
    vm.power_on()

    outside = vm.host.run(["touch", "/usr/lib/lab-vm-was-here"], check=False)
    vm.host.run(["sh", "-c", "echo mine > /usr/local/lib/lab-vm-file && echo tmp > /tmp/lab-vm-tmp"])

    assert outside.returncode != 0 and "Read-only file system" in outside.stderr
    assert not Path("/usr/lib/lab-vm-was-here").exists()
    assert not Path("/usr/local/lib/lab-vm-file").exists() and not Path("/tmp/lab-vm-tmp").exists()
    assert (vm.root / "usr-local" / "lib" / "lab-vm-file").read_text() == "mine\n"
    assert vm.host.run(["ls", "-A", "/root/.ssh"]).stdout.split() == ["authorized_keys"], "a /root of its own"
