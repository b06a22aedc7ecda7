"""A lab VM: a host booted the way a cloud instance boots, for the cloud's
compute driver (cloud/vip_cloud/compute.py) and the lab.

The VM is a sealed NodeHost (hosts.py): its disk is its directory, nothing
outside it is writable from inside. Its NIC (`ens3`, as an Ubuntu VM on
OpenStack names it) is one end of a veth pair whose other end stays on the
machine under a name the caller gives, for the caller to plug into a switch
(Open vSwitch's integration bridge). A boot is what a cloud image's boot is:
the NIC comes up with the port's address (as Neutron's DHCP would give it),
cloud-init runs its four stages on the NoCloud seed (user data and meta-data:
instance id, hostname, the key pair's public key), sshd starts after its
init stage as ssh.service does, and the units enabled with `systemctl
enable` (the lab's systemctl stand-in) start last. /run starts empty on every
boot; the disk stays until the VM is destroyed.

The VM's state (its spec and its holder's pid) is a JSON file in its
directory, so that another process (nova-compute restarted) can adopt a
running VM, power it off or on, and destroy it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .boot import BootFailed
from .hosts import NodeHost, process_start_time
from .netns import add_namespace, alive, delete_namespace, kill_namespace_processes, list_namespaces, run
from .sshd import ENABLED_UNIT_LINK, LAB_PATH, install_systemctl, serve_ssh

STATE_FILE = "vm.json"
SEED_DIR = "/var/lib/cloud/seed/nocloud"
CLOUD_INIT_OUTPUT = "/var/log/cloud-init-output.log"
VM_CLOUD_CFG = "/etc/cloud/cloud.cfg.d/99-keepalived-vip-lab-vm.cfg"
# The image's settings, as on a distribution's cloud image (its default user,
# ubuntu on Ubuntu's, debian on Debian's, is the spec's), and the lab's: the
# seed is the only data source, the network is the lab's (as Neutron's DHCP
# gives it), and only modules that act inside the VM
# run. Left out: what installs or updates packages or configures apt (/usr is
# the machine's, read-only), grows or mounts disks, writes to the machine's
# kernel (seed_random), /usr/local/share (ca-certs) or services (rsyslog,
# ntp), needs the network (ssh-import-id, snap, lxd, landscape, puppet, chef,
# salt...), or powers the machine off (power-state-change).
VM_CLOUD_CFG_TEXT = """\
datasource_list: [NoCloud]
datasource:
  NoCloud:
    # The seed directory only: no block device is probed for a cidata label.
    fs_label: null
network: {{config: disabled}}
system_info:
  default_user:
    name: {default_user}
    lock_passwd: true
    gecos: {default_user}
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
cloud_init_modules:
  - migrator
  - bootcmd
  - write-files
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
cloud_config_modules:
  - set-passwords
  - timezone
  - runcmd
cloud_final_modules:
  - write-files-deferred
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - ssh-authkey-fingerprints
  - keys-to-console
  - final-message
"""
# The environment of everything a boot runs on the VM: its own, not the caller's.
BOOT_ENV = ["env", "-i", f"PATH={LAB_PATH}", "LANG=C.UTF-8", "HOME=/root", "TERM=linux"]
# cloud-init's stages, in the order a boot runs them (sshd starts after `init`).
STAGES = (["init", "--local"], ["init"], ["modules", "--mode=config"], ["modules", "--mode=final"])
STAGE_TIMEOUT = 600
# The units a boot starts when they are enabled: the systemctl stand-in knows these.
BOOT_UNITS = {"keepalived": ENABLED_UNIT_LINK}


class CloudInitFailed(BootFailed):
    """cloud-init reported errors. The VM is up all the same, as a real one would be."""


@dataclass
class VMSpec:
    """What the VM is booted from; it does not change over the VM's life."""

    name: str  # the hostname
    instance_id: str
    namespace: str
    nic: str  # the NIC's name inside, e.g. ens3
    outer: str  # the veth end left outside, for the caller to plug in
    mac: str
    address_cidr: str  # e.g. 192.168.0.11/24
    gateway: str | None = None
    mtu: int | None = None
    user_data: str = ""
    public_key: str | None = None
    # The caller's own (the compute driver keeps the instance's name here).
    labels: dict[str, str] = field(default_factory=dict)
    # The image's cloud-init default user (Glance's os_admin_user).
    default_user: str = "ubuntu"
    # Where the outer end is: the machine (None), or a namespace (a switch
    # of the caller's own, as the lab's).
    outer_namespace: str | None = None

    @property
    def address(self) -> str:
        return self.address_cidr.split("/")[0]

    def outside(self) -> list[str]:
        """The start of an `ip` command line that acts where the outer end is."""
        return ["ip", "-n", self.outer_namespace] if self.outer_namespace else ["ip"]


class LabVM:
    """One VM: create, power on (boot), power off, reboot, destroy."""

    def __init__(self, root: Path, spec: VMSpec):
        self.root = Path(root)
        self.spec = spec
        self.host = NodeHost(spec.name, spec.namespace, spec.nic, self.root, sealed=True)
        self.host.address_cidr, self.host.gateway = spec.address_cidr, spec.gateway
        # The default user, once a boot has found it (sshd's login).
        self.login: str | None = None
        # What this process started on the VM (sshd), to reap after power off.
        self._children: list[subprocess.Popen] = []

    # --- state on disk ------------------------------------------------------

    @staticmethod
    def exists(root: Path) -> bool:
        return (Path(root) / STATE_FILE).is_file()

    @classmethod
    def load(cls, root: Path) -> LabVM:
        """The VM whose directory is root, as its JSON describes it; a running
        one is adopted (its holder, and so its processes, become this object's)."""
        state = json.loads((Path(root) / STATE_FILE).read_text())
        vm = cls(Path(root), VMSpec(**state["spec"]))
        vm.login = state.get("login")
        holder = state.get("holder")
        vm.host.boots = int(state.get("boots", 0))
        if holder:
            vm.host.adopt(int(holder["pid"]), vm.host.boots, holder.get("start_time"))
        return vm

    def save(self) -> None:
        holder = None
        if self.host.running:
            pid = self.host.holder_pid
            holder = {"pid": pid, "start_time": process_start_time(pid)}
        state = {
            "spec": asdict(self.spec),
            "boots": self.host.boots,
            "holder": holder,
            "power": "running" if holder else "shutdown",
            "login": self.login,
        }
        # Atomic, and for root only: the user data may hold secrets.
        temporary = self.root / f".{STATE_FILE}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
        os.replace(temporary, self.root / STATE_FILE)

    # --- life cycle ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.host.running

    def create(self) -> None:
        """The VM's disk, namespace and NIC, powered off: its outer end is
        on the machine, up, for the caller to plug in before power_on."""
        if self.exists(self.root):
            raise FileExistsError(f"{self.root} already holds a VM")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.host.make_directories()
        self.save()
        self.ensure_network()

    def ensure_network(self) -> None:
        """The namespace and the veth pair, made again if they are gone (after
        the machine restarted); the NIC inside is left down until a boot."""
        spec = self.spec
        if spec.namespace not in list_namespaces():
            add_namespace(spec.namespace)
        inside = run(["ip", "-n", spec.namespace, "link", "show", "dev", spec.nic], check=False)
        if inside.returncode != 0:
            run([*spec.outside(), "link", "del", spec.outer], check=False)
            mtu = ["mtu", str(spec.mtu)] if spec.mtu else []
            run(
                [*spec.outside(), "link", "add", spec.outer, *mtu, "type", "veth", "peer", "name", spec.nic]
                + ["address", spec.mac, *mtu, "netns", spec.namespace]
            )
            # Open vSwitch's userspace datapath takes the outer end with
            # AF_PACKET, which drops the VM's unsegmented (GSO) packets: the
            # VM sends them segmented and checksummed, as a virtio NIC would.
            run(["ip", "netns", "exec", spec.namespace, "ethtool", "-K", spec.nic, "tx", "off"])
        run([*spec.outside(), "link", "set", spec.outer, "up"])

    def power_on(self) -> None:
        """Boots the VM (nothing if it is running). Raises CloudInitFailed,
        with the end of cloud-init's output, if cloud-init reports errors:
        the VM is up then all the same."""
        if self.running:
            return
        self.ensure_network()
        self._kill_strays()
        self._clear_run_dirs()
        self._write_seed()
        install_systemctl(self.host)
        self._configure_nic()
        self.host.start()
        self.save()  # the holder, from now on: a crash of this process leaves an adoptable VM
        self._log(f"--- boot {self.host.boots} ---")
        failures = self._boot()
        self.save()
        status = self.cloud_init_status()
        if failures or status != "done":
            # What cloud-init says went wrong, else what exited non-zero; sshd either way.
            errors = self.cloud_init_errors()
            problems = (errors + [f for f in failures if f.startswith("sshd")] if errors else failures) or [
                f"cloud-init status: {status}"
            ]
            raise CloudInitFailed(
                f"{self.spec.name}: cloud-init failed: {'; '.join(problems)}\n"
                f"the end of {CLOUD_INIT_OUTPUT}:\n{self.console_output(lines=25)}"
            )

    def _boot(self) -> list[str]:
        """cloud-init's stages, sshd after the init stage, then the enabled
        units; returns what failed (a boot goes on after a failure, as a VM's does)."""
        failures = []
        for stage in STAGES:
            command = ["cloud-init", *stage]
            result = self.host.run(BOOT_ENV + command, check=False, timeout=STAGE_TIMEOUT)
            self._log(f"$ {' '.join(command)} -> {result.returncode}\n{result.stdout}{result.stderr}")
            if result.returncode != 0:
                last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
                failures.append(f"`{' '.join(command)}` exited {result.returncode} ({last})")
            if stage == ["init"]:
                try:
                    # The key pair's key is cloud-init's (its ssh module), as on a VM.
                    self.login = serve_ssh(self.host, self.spec.address, None, self._children.append)
                except (RuntimeError, OSError) as error:
                    failures.append(f"sshd did not start: {error}")
        for unit, link in BOOT_UNITS.items():
            if self.host.run(["test", "-L", link], check=False).returncode == 0:
                result = self.host.run(BOOT_ENV + ["systemctl", "start", unit], check=False, timeout=60)
                self._log(f"$ systemctl start {unit} -> {result.returncode}\n{result.stdout}{result.stderr}")
        return failures

    def power_off(self, timeout: float = 0) -> None:
        """Powers the VM off: with a timeout, a clean shutdown (every process
        gets SIGTERM, keepalived hands over, and what is left after timeout
        seconds is killed), without, at once. Its NIC goes down with no address."""
        if self.running and timeout > 0:
            holder = self.host.holder_pid
            pids = [pid for pid in self.host.processes() if pid != holder]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.host.stop()
        self._kill_strays()
        if self.spec.namespace in list_namespaces():
            for command in (["link", "set", self.spec.nic, "down"], ["addr", "flush", "dev", self.spec.nic]):
                run(["ip", "-n", self.spec.namespace, *command], check=False)
        self._clear_run_dirs()
        if self.root.is_dir():  # not once destroyed
            self.save()

    def reboot(self, hard: bool = True, timeout: float = 60) -> None:
        """A reset (hard) or a clean restart (soft: as power_off with timeout)."""
        self.power_off(timeout=0 if hard else timeout)
        self.power_on()

    def destroy(self, keep_disk: bool = False) -> None:
        """Nothing of the VM is left: processes, NIC, namespace and (unless
        keep_disk) its directory."""
        self.power_off()
        run([*self.spec.outside(), "link", "del", self.spec.outer], check=False)
        if self.spec.namespace in list_namespaces():
            delete_namespace(self.spec.namespace)
        if keep_disk:
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # --- what one can see of it -------------------------------------------

    def console_output(self, lines: int | None = None) -> str:
        """What a VM's serial console shows of its boots, or its last lines:
        cloud-init's output log (every boot's), then what was written to
        /dev/console itself (cloud-init's keys-to-console: the host keys)."""
        log = self.host.var_upper / CLOUD_INIT_OUTPUT.removeprefix("/var/")
        text = log.read_text(errors="replace") if log.exists() else ""
        if self.host.console.exists():
            text += self.host.console.read_text(errors="replace")
        if lines is None:
            return text
        return "\n".join(text.splitlines()[-lines:])

    def cloud_init_status(self) -> str:
        """What `cloud-init status` says of this boot: done, error, running, not run."""
        if not self.running:
            return "not run"
        result = self.host.run(BOOT_ENV + ["cloud-init", "status"], check=False)
        for line in result.stdout.splitlines():
            if line.startswith("status:"):
                return line.split(":", 1)[1].strip()
        return f"unknown ({(result.stderr or result.stdout).strip()})"

    def cloud_init_errors(self) -> list[str]:
        """The errors cloud-init recorded in this boot, stage by stage."""
        try:
            stages = json.loads((self.host.run_dir / "cloud-init" / "status.json").read_text())["v1"]
        except (OSError, ValueError, KeyError):
            return []
        return [
            f"{stage}: {error}"
            for stage, result in stages.items()
            if isinstance(result, dict)
            for error in result.get("errors") or []
        ]

    # --- plumbing -----------------------------------------------------------

    def _write_seed(self) -> None:
        """The NoCloud seed, as a cloud's metadata would give it."""
        meta: dict[str, object] = {"instance-id": self.spec.instance_id, "local-hostname": self.spec.name}
        if self.spec.public_key:
            meta["public-keys"] = [self.spec.public_key.strip()]
        self.host.write_file(f"{SEED_DIR}/user-data", self.spec.user_data, 0o600)
        # JSON is YAML.
        self.host.write_file(f"{SEED_DIR}/meta-data", json.dumps(meta, indent=2) + "\n", 0o600)
        self.host.write_file(VM_CLOUD_CFG, VM_CLOUD_CFG_TEXT.format(default_user=self.spec.default_user))

    def _configure_nic(self) -> None:
        """The NIC as DHCP leaves it: up, the port's address, the default route."""
        ns, nic = self.spec.namespace, self.spec.nic
        run(["ip", "-n", ns, "addr", "flush", "dev", nic])
        if self.spec.mtu:
            run(["ip", "-n", ns, "link", "set", nic, "mtu", str(self.spec.mtu)])
        run(["ip", "-n", ns, "addr", "add", self.spec.address_cidr, "dev", nic])
        run(["ip", "-n", ns, "link", "set", nic, "up"])
        if self.spec.gateway:
            run(["ip", "-n", ns, "route", "replace", "default", "via", self.spec.gateway, "dev", nic])

    def _kill_strays(self) -> None:
        """Whatever is left in the VM's network namespace once its holder is
        gone (a holder killed alone leaves its mount namespace to the rest)."""
        if self.spec.namespace in list_namespaces():
            kill_namespace_processes(self.spec.namespace)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        self._children.clear()

    def _clear_run_dirs(self) -> None:
        """/run of past boots: a VM's /run is a tmpfs."""
        for run_dir in self.root.glob("run.*"):
            shutil.rmtree(run_dir, ignore_errors=True)

    def _log(self, text: str) -> None:
        self.host.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.host.log_dir / "boot.log", "a") as log:
            log.write(text.rstrip("\n") + "\n")
