"""Nova's compute driver for the local cloud: every instance is a lab VM
(vip_hosts.vm) on this machine, booted from its user data by real cloud-init,
its port an Open vSwitch port on the integration bridge that Neutron's OVS
agent wires.

nova-compute imports a driver as nova.virt.<compute_driver>: vip_cloud.nova_compute
registers this module as nova.virt.labhost, so nova.conf says
`compute_driver = labhost.LabHostDriver`. What it relies on besides:

  [DEFAULT] instances_path            each instance's VM lives in <instances_path>/<uuid>
  [DEFAULT] vif_plugging_timeout      how long spawn waits for Neutron's network-vif-plugged
  [DEFAULT] vif_plugging_is_fatal     whether a missing event fails the build
  [DEFAULT] shutdown_timeout          a clean power off's grace (Nova passes it)
  [neutron] ovs_bridge                the bridge when the port binding names none (the
                                      host's; the binding names its host agent's)

and ovs-vsctl finding the switch's database (OVS_RUNDIR in its environment).
It runs as root. Nodes and resources are the fake driver's (one node named
after the host, plenty of everything); what a lab VM cannot do (snapshots,
pause, suspend, rescue, migrations, consoles but the log, interface hot plug)
is refused as Nova's base driver refuses it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import subprocess
from pathlib import Path

import nova.conf
from nova import exception
from nova.compute import power_state
from nova.network import model as network_model
from nova.virt import driver, fake, hardware
from oslo_log import log as logging
from oslo_utils import excutils

from vip_hosts.netns import delete_namespace
from vip_hosts.vm import CloudInitFailed, LabVM, VMSpec

from .layout import INSTANCE_NAMESPACE_PREFIX

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# The NIC as an Ubuntu VM on OpenStack names it (virtio, first PCI slot).
NIC = "ens3"
# As much of the console log as the libvirt driver returns.
MAX_CONSOLE_BYTES = 100 * 1024
OVS_VSCTL_TIMEOUT = 120


def tap_name(vif) -> str:
    """The outer end of the VM's NIC, named as Nova names a tap (tapXXXXXXXX-XX)."""
    return ("tap" + vif["id"])[: network_model.NIC_NAME_LEN]


def ovs_vsctl(*args: str) -> None:
    result = subprocess.run(
        ["ovs-vsctl", f"--timeout={OVS_VSCTL_TIMEOUT}", *args],
        capture_output=True,
        text=True,
        timeout=OVS_VSCTL_TIMEOUT + 30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ovs-vsctl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")


def nic_settings(vif) -> tuple[str, str | None, int | None]:
    """The port's address (CIDR), gateway and MTU, as DHCP would give them:
    the first IPv4 subnet with a fixed IP of the port."""
    network = vif["network"]
    for subnet in network["subnets"]:
        if subnet.get("version") != 4:
            continue
        fixed = [ip for ip in subnet["ips"] if ip.get("type", "fixed") == "fixed"]
        if not fixed:
            continue
        prefix = ipaddress.ip_network(subnet["cidr"], strict=False).prefixlen
        gateway = subnet.get("gateway")
        mtu = network.get_meta("mtu") if hasattr(network, "get_meta") else network.get("meta", {}).get("mtu")
        return (
            f"{fixed[0]['address']}/{prefix}",
            gateway["address"] if gateway and gateway.get("address") else None,
            int(mtu) if mtu else None,
        )
    raise ValueError(f"port {vif['id']} has no IPv4 address")


def image_user(image_meta) -> str:
    """The image's cloud-init default user, as Glance's os_admin_user says
    (the local cloud's image is Debian's: debian)."""
    properties = getattr(image_meta, "properties", None)
    if properties is not None and properties.obj_attr_is_set("os_admin_user"):
        return properties.os_admin_user
    return "debian"


def user_data_text(instance) -> str:
    if not instance.user_data:
        return ""
    try:
        return base64.b64decode(instance.user_data).decode("utf-8")
    except (binascii.Error, ValueError) as error:
        raise exception.BuildAbortException(
            instance_uuid=instance.uuid,
            reason=f"the lab host driver takes user data as UTF-8 text (not gzip or binary): {error}",
        ) from error


class LabHostDriver(fake.FakeDriverWithoutFakeNodes):
    """Instances as lab VMs (see the module's doc)."""

    capabilities = {
        **fake.FakeDriver.capabilities,
        "supports_evacuate": False,
        "supports_attach_interface": False,
        "supports_tagged_attach_interface": False,
        "supports_device_tagging": False,
    }

    # Refused as the base driver refuses them (NotImplementedError), rather
    # than pretended as the fake driver pretends them.
    snapshot = driver.ComputeDriver.snapshot
    pause = driver.ComputeDriver.pause
    unpause = driver.ComputeDriver.unpause
    suspend = driver.ComputeDriver.suspend
    resume = driver.ComputeDriver.resume
    rescue = driver.ComputeDriver.rescue
    unrescue = driver.ComputeDriver.unrescue
    attach_interface = driver.ComputeDriver.attach_interface
    detach_interface = driver.ComputeDriver.detach_interface
    set_admin_password = driver.ComputeDriver.set_admin_password
    trigger_crash_dump = driver.ComputeDriver.trigger_crash_dump
    migrate_disk_and_power_off = driver.ComputeDriver.migrate_disk_and_power_off
    live_migration = driver.ComputeDriver.live_migration
    check_can_live_migrate_destination = driver.ComputeDriver.check_can_live_migrate_destination
    get_vnc_console = driver.ComputeDriver.get_vnc_console
    get_spice_console = driver.ComputeDriver.get_spice_console
    get_serial_console = driver.ComputeDriver.get_serial_console
    get_mks_console = driver.ComputeDriver.get_mks_console

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        # Instance uuid -> its VM, as this process knows it (it reaps what it started).
        self._vms: dict[str, LabVM] = {}

    # --- the VMs on disk ----------------------------------------------------

    @staticmethod
    def _instances_path() -> Path:
        return Path(CONF.instances_path)

    def _vm_for(self, uuid: str) -> LabVM | None:
        root = self._instances_path() / uuid
        if not LabVM.exists(root):
            return None
        if uuid not in self._vms:
            self._vms[uuid] = LabVM.load(root)
        return self._vms[uuid]

    def _vm(self, instance) -> LabVM:
        vm = self._vm_for(instance.uuid)
        if vm is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return vm

    def _uuids(self) -> list[str]:
        base = self._instances_path()
        return sorted(path.parent.name for path in base.glob("*/vm.json")) if base.is_dir() else []

    def init_host(self, host):
        """Adopts the VMs a previous nova-compute left: running ones keep running."""
        super().init_host(host)
        for uuid in self._uuids():
            try:
                vm = self._vm_for(uuid)
            except Exception:
                LOG.exception("Cannot adopt the lab VM in %s", self._instances_path() / uuid)
                continue
            if vm is not None:
                LOG.info("Adopted lab VM %s (%s, %s)", uuid, vm.spec.name, "running" if vm.running else "shut down")

    def list_instances(self):
        vms = [self._vm_for(uuid) for uuid in self._uuids()]
        return [vm.spec.labels.get("name", vm.spec.instance_id) for vm in vms if vm is not None]

    def list_instance_uuids(self):
        return self._uuids()

    def instance_exists(self, instance):
        return LabVM.exists(self._instances_path() / instance.uuid)

    def get_info(self, instance, use_cache=True):
        vm = self._vm(instance)
        state = power_state.RUNNING if vm.running else power_state.SHUTDOWN
        return hardware.InstanceInfo(state=state, internal_id=vm.spec.namespace)

    # --- ports --------------------------------------------------------------

    @staticmethod
    def _bridge(vif) -> str:
        return (vif.get("network") or {}).get("bridge") or CONF.neutron.ovs_bridge

    def _plug(self, instance, vif) -> None:
        """The tap into the integration bridge, named for Neutron's OVS agent
        to find the port (iface-id) and bind it."""
        tap = tap_name(vif)
        ovs_vsctl(
            "--may-exist",
            "add-port",
            self._bridge(vif),
            tap,
            "--",
            "set",
            "Interface",
            tap,
            f"external-ids:iface-id={vif['id']}",
            "external-ids:iface-status=active",
            f"external-ids:attached-mac={vif['address']}",
            f"external-ids:vm-uuid={instance.uuid}",
        )

    @staticmethod
    def _unplug(tap: str) -> None:
        try:
            ovs_vsctl("--if-exists", "del-port", tap)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            LOG.warning("Could not remove %s from Open vSwitch: %s", tap, error)

    def plug_vifs(self, instance, network_info):
        """The VM's NIC (made again if the machine restarted) into the bridge."""
        vm = self._vm_for(instance.uuid)
        if vm is None:
            return
        vm.ensure_network()
        for vif in network_info or []:
            if tap_name(vif) == vm.spec.outer:
                self._plug(instance, vif)

    def unplug_vifs(self, instance, network_info):
        for vif in network_info or []:
            self._unplug(tap_name(vif))

    @staticmethod
    def _neutron_events(network_info) -> list[tuple[str, str]]:
        # As the libvirt driver: only ports Neutron has not reported active yet.
        return [
            ("network-vif-plugged", vif["id"])
            for vif in network_info
            if vif.get("active", True) is False and vif["vnic_type"] != network_model.VNIC_TYPE_REMOTE_MANAGED
        ]

    def _neutron_failed_callback(self, event_name, instance):
        LOG.error("Neutron reported failure on event %s for instance %s", event_name, instance.uuid, instance=instance)
        if CONF.vif_plugging_is_fatal:
            raise exception.VirtualInterfaceCreateException()

    # --- life cycle ---------------------------------------------------------

    def spawn(
        self,
        context,
        instance,
        image_meta,
        injected_files,
        admin_password,
        allocations,
        network_info=None,
        block_device_info=None,
        power_on=True,
        accel_info=None,
    ):
        vifs = list(network_info or [])
        if len(vifs) != 1:
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid,
                reason=f"the lab host driver boots an instance on exactly one port, not {len(vifs)}",
            )
        vif = vifs[0]
        if vif["type"] != network_model.VIF_TYPE_OVS:
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid,
                reason=f"port {vif['id']} is bound as {vif['type']!r}: the lab host driver plugs only "
                "Open vSwitch ports (is Neutron's OVS agent up on this host?)",
            )
        try:
            address_cidr, gateway, mtu = nic_settings(vif)
        except ValueError as error:
            raise exception.BuildAbortException(instance_uuid=instance.uuid, reason=str(error)) from error
        spec = VMSpec(
            name=instance.hostname or f"host-{instance.uuid[:8]}",
            instance_id=instance.uuid,
            namespace=INSTANCE_NAMESPACE_PREFIX + instance.uuid,
            nic=NIC,
            outer=tap_name(vif),
            mac=vif["address"],
            address_cidr=address_cidr,
            gateway=gateway,
            mtu=mtu,
            user_data=user_data_text(instance),
            public_key=instance.key_data or None,
            labels={"name": instance.name},
            default_user=image_user(image_meta),
        )
        vm = LabVM(self._instances_path() / instance.uuid, spec)
        timeout = CONF.vif_plugging_timeout
        events = self._neutron_events(vifs) if power_on and timeout else []
        try:
            # As the libvirt driver's guest, the VM waits (created, not yet
            # booted) until Neutron has wired its port.
            with self.virtapi.wait_for_instance_event(
                instance, events, timeout=timeout, error_callback=self._neutron_failed_callback
            ):
                self._vms[instance.uuid] = vm
                vm.create()
                self._plug(instance, vif)
        except exception.InstanceEventTimeout:
            LOG.warning("Neutron did not report port %s plugged within %s s", vif["id"], timeout, instance=instance)
            if CONF.vif_plugging_is_fatal:
                self._remove(instance.uuid, vm, [vif])
                raise exception.VirtualInterfaceCreateException() from None
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove(instance.uuid, vm, [vif])
        if not power_on:
            return
        try:
            vm.power_on()
        except CloudInitFailed as error:
            LOG.error("cloud-init failed on the instance: %s", error, instance=instance)
            self._remove(instance.uuid, vm, [vif])
            raise exception.BuildAbortException(instance_uuid=instance.uuid, reason=str(error)) from error
        except Exception:
            with excutils.save_and_reraise_exception():
                self._remove(instance.uuid, vm, [vif])
        LOG.info("Lab VM %s is up at %s (login %s)", spec.name, spec.address, vm.login, instance=instance)

    def _remove(self, uuid: str, vm: LabVM | None, vifs) -> None:
        """Everything of the instance on this machine: its ports on the
        bridge, its VM (processes, NIC, namespace, directory)."""
        taps = {tap_name(vif) for vif in vifs or []}
        if vm is not None:
            taps.add(vm.spec.outer)
        for tap in sorted(taps):
            self._unplug(tap)
        if vm is not None:
            vm.destroy()
        else:
            # What a failed create may have left without its JSON.
            for tap in taps:
                subprocess.run(["ip", "link", "del", tap], capture_output=True)
            delete_namespace(INSTANCE_NAMESPACE_PREFIX + uuid)
        self._vms.pop(uuid, None)

    def destroy(
        self, context, instance, network_info, block_device_info=None, destroy_disks=True, destroy_secrets=True
    ):
        """Nothing of the instance is left on the machine; a lab VM's disk is
        its directory here, never shared, so it goes whatever destroy_disks says."""
        self._remove(instance.uuid, self._vm_for(instance.uuid), network_info)

    def power_off(self, instance, timeout=0, retry_interval=0):
        """With a timeout, a clean shutdown (SIGTERM to all, keepalived hands
        over), what is left killed after it; without, at once."""
        self._vm(instance).power_off(timeout=timeout)

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None, share_info=None):
        self.plug_vifs(instance, network_info)
        self._boot(instance, lambda vm: vm.power_on())

    def reboot(
        self,
        context,
        instance,
        network_info,
        reboot_type,
        block_device_info=None,
        bad_volumes_callback=None,
        accel_info=None,
        share_info=None,
    ):
        self.plug_vifs(instance, network_info)
        hard = str(reboot_type).upper() == "HARD"
        self._boot(instance, lambda vm: vm.reboot(hard=hard, timeout=CONF.shutdown_timeout))

    def resume_state_on_host_boot(self, context, instance, network_info, share_info, block_device_info=None):
        """After the machine restarted: the NIC made again and the VM booted."""
        self.power_on(context, instance, network_info)

    def _boot(self, instance, boot) -> None:
        vm = self._vm(instance)
        try:
            boot(vm)
        except CloudInitFailed as error:
            # As on a cloud: the instance is up, its console log tells.
            LOG.warning("cloud-init reported errors on the instance: %s", error, instance=instance)

    def get_console_output(self, context, instance):
        """cloud-init's output log of every boot (the end of it)."""
        return self._vm(instance).console_output().encode("utf-8", "replace")[-MAX_CONSOLE_BYTES:]
