"""What DevStack's create_* functions and stack.sh's tail make, through
openstacksdk as the cloud's admin: the service project and roles, a demo
project and member, each service's user and catalog entry (its module
registers it), and what our stack looks up (ext-net, the image, a flavor),
with quotas for two stacks side by side.

The image is the guest image built here (cloud/guest/build-image.sh): its
root file system, with its kernel and initrd as images of their own
(DevStack's aki/ari), named in the root image's kernel_id and ramdisk_id, and
the command line it boots with (os_command_line). Nova's libvirt driver
boots it; the namespace driver boots a lab host whose default user is the
image's os_admin_user."""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path

import openstack
import yaml

from vip_hosts.supervisor import ServiceFailed

from .config import Secrets, keystone_url
from .layout import PHYSNET, REGION, CloudDirs

log = logging.getLogger(__name__)

EXTERNAL_NETWORK = "ext-net"
IMAGE_NAME = "debian-12"
# The image's cloud-init default user (build-image.sh's cloud.cfg: Debian's).
IMAGE_USER = "debian"
FLAVOR_NAME = "m1.small"
DEMO_PROJECT = "demo"
DEMO_USER = "demo"
# Two stacks of three instances each, with room for a test's own servers.
QUOTAS = {
    "compute": {"instances": 20, "cores": 40, "ram": 40 * 1024, "server_groups": 10, "server_group_members": 10},
    "network": {
        "network": 20,
        "subnet": 20,
        "port": 100,
        "router": 10,
        "floatingip": 20,
        "security_group": 30,
        "security_group_rule": 300,
    },
}


def write_clouds_yaml(dirs: CloudDirs, secrets: Secrets) -> None:
    def cloud(user: str, password: str, project: str) -> dict:
        return {
            "auth": {
                "auth_url": f"{keystone_url()}/v3",
                "username": user,
                "password": password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": REGION,
            "interface": "public",
            "identity_api_version": 3,
        }

    document = {
        "clouds": {
            "local": cloud(DEMO_USER, secrets.demo_password, DEMO_PROJECT),
            "local-admin": cloud("admin", secrets.admin_password, "admin"),
        }
    }
    dirs.clouds_yaml.touch(mode=0o600)
    dirs.clouds_yaml.write_text(yaml.safe_dump(document, sort_keys=False))


def connect(dirs: CloudDirs, name: str) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(dirs.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=name))


def _ensure_role(conn, name: str):
    return conn.identity.find_role(name) or conn.identity.create_role(name=name)


def identity(conn, secrets: Secrets) -> None:
    """The service project and the roles, the region, and the demo project with its member."""
    domain = conn.identity.find_domain("Default")
    if not conn.identity.find_project("service", domain_id=domain.id):
        conn.identity.create_project(name="service", domain_id=domain.id)
    for role in ("admin", "service", "member"):
        _ensure_role(conn, role)
    if not conn.identity.find_region(REGION):
        conn.identity.create_region(id=REGION)
    demo = conn.identity.find_project(DEMO_PROJECT, domain_id=domain.id) or conn.identity.create_project(
        name=DEMO_PROJECT, domain_id=domain.id
    )
    demo_user = conn.identity.find_user(DEMO_USER, domain_id=domain.id) or conn.identity.create_user(
        name=DEMO_USER, password=secrets.demo_password, domain_id=domain.id, default_project_id=demo.id
    )
    conn.identity.assign_project_role_to_user(demo, demo_user, _ensure_role(conn, "member"))


def service_account(conn, secrets: Secrets, name: str, kind: str, url: str) -> None:
    """A service's user and its catalog entry (DevStack's create_<service>_accounts).
    Service users hold admin and service in the service project, as in
    DevStack: binding ports and Neutron's network-vif-plugged events need it."""
    domain = conn.identity.find_domain("Default")
    project = conn.identity.find_project("service", domain_id=domain.id)
    user = conn.identity.find_user(name, domain_id=domain.id) or conn.identity.create_user(
        name=name, password=secrets.service_password, domain_id=domain.id
    )
    for role in ("admin", "service"):
        conn.identity.assign_project_role_to_user(project, user, _ensure_role(conn, role))
    service = conn.identity.find_service(name) or conn.identity.create_service(name=name, type=kind)
    existing = {e.interface for e in conn.identity.endpoints(service_id=service.id)}
    for interface in ("public", "internal", "admin"):
        if interface not in existing:
            conn.identity.create_endpoint(service_id=service.id, interface=interface, url=url, region_id=REGION)


def _wait(what: str, condition, timeout: float, interval: float = 2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except openstack.exceptions.SDKException as error:
            last = error
        time.sleep(interval)
    raise ServiceFailed(f"{what} within {timeout:.0f} s (last seen: {last!r})")


def wait_for_compute(conn, hosts: list[str], timeout: float) -> None:
    def up() -> bool:
        reported = {s.host for s in conn.compute.services() if s.binary == "nova-compute" and s.state == "up"}
        return set(hosts) <= reported

    _wait(f"nova-compute did not report up on each of {', '.join(hosts)}", up, timeout)


def wait_for_agents(conn, timeout: float, real_vms: bool) -> None:
    wanted = {"Open vSwitch agent", "L3 agent"} | ({"DHCP agent"} if real_vms else set())

    def alive():
        agents = list(conn.network.agents())
        seen = {a.agent_type for a in agents if a.is_alive}
        return wanted <= seen and all(a.is_alive for a in agents)

    _wait(f"the Neutron agents ({', '.join(sorted(wanted))}) were not all alive", alive, timeout)


def _upload(conn, name: str, path: Path, disk_format: str, properties: dict[str, str]):
    image = conn.image.create_image(
        name=name,
        filename=str(path),
        disk_format=disk_format,
        container_format=disk_format if disk_format in ("aki", "ari") else "bare",
        visibility="public",
        properties=properties,
    )
    _wait(f"the image {name} did not become active", lambda: conn.image.get_image(image).status == "active", 300)
    return image


def guest_image(conn, image_dir: Path) -> None:
    """The guest image in Glance as DevStack uploads a kernel-booted one."""
    kernel = _upload(conn, f"{IMAGE_NAME}-kernel", image_dir / "vmlinuz", "aki", {})
    ramdisk = _upload(conn, f"{IMAGE_NAME}-initrd", image_dir / "initrd.img", "ari", {})
    _upload(
        conn,
        IMAGE_NAME,
        image_dir / "root.img",
        "raw",
        {
            "kernel_id": kernel.id,
            "ramdisk_id": ramdisk.id,
            "os_command_line": (image_dir / "cmdline").read_text().strip(),
            "os_distro": "debian",
            "os_version": "12",
            "os_admin_user": IMAGE_USER,
        },
    )


def cloud(conn, image_dir: Path, external_cidr: str) -> None:
    subnet = ipaddress.ip_network(external_cidr)
    hosts = list(subnet.hosts())
    network = conn.network.find_network(EXTERNAL_NETWORK) or conn.network.create_network(
        name=EXTERNAL_NETWORK,
        is_router_external=True,
        provider_network_type="flat",
        provider_physical_network=PHYSNET,
    )
    if not conn.network.find_subnet(f"{EXTERNAL_NETWORK}-subnet"):
        conn.network.create_subnet(
            name=f"{EXTERNAL_NETWORK}-subnet",
            network_id=network.id,
            ip_version=4,
            cidr=str(subnet),
            gateway_ip=str(hosts[0]),
            is_dhcp_enabled=False,
            allocation_pools=[{"start": str(hosts[9]), "end": str(hosts[-5])}],
        )
    if not conn.image.find_image(IMAGE_NAME):
        guest_image(conn, image_dir)
    if not conn.compute.find_flavor(FLAVOR_NAME):
        conn.compute.create_flavor(name=FLAVOR_NAME, ram=512, vcpus=1, disk=1, is_public=True)
    demo = conn.identity.find_project(DEMO_PROJECT)
    conn.set_compute_quotas(demo.id, **QUOTAS["compute"])
    conn.set_network_quotas(demo.id, **QUOTAS["network"])
