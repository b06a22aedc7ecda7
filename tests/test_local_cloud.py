"""The local OpenStack of make cloud (issue 18), used as a user uses a cloud:
openstacksdk and the `openstack` CLI as the demo project's member, SSH through
floating IPs from this machine, and packets sent from inside the instances.

Two servers, A and B, are booted once for the module on a network, router and
security groups of its own (every name starts with t18-), and every test
undoes what it changed on them; the module deletes all of it at the end and
checks that nothing named after it is left. The last test deletes B itself.
Another user may be using the cloud meanwhile: nothing here touches what is
not its own, and the test that restarts nova-compute runs only on a cloud the
session brought up itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vip_cloud.seed import IMAGE_NAME, IMAGE_USER
from vip_stack.observe import Pinger

from .conftest import LocalCloud, reported_after, skip_or_fail_in_ci, utc_now

pytestmark = pytest.mark.cloud

RUN = f"t18-{uuid.uuid4().hex[:6]}"
SUBNET_CIDR = "10.18.0.0/24"
GATEWAY = "10.18.0.1"
# Fixed addresses come from .10-.99; no port owns what is above.
POOL = {"start": "10.18.0.10", "end": "10.18.0.99"}
# An address each test may send from without owning it: one per test, so that
# one test's allowed-address-pair, removed at its end, never shows in another.
FOREIGN_UDP = "10.18.0.200"
FOREIGN_ARP = "10.18.0.201"
UDP_PORT = 5018
HELLO = f"hello from {RUN}'s user data"
USER_DATA = f"""\
#cloud-config
write_files:
  - path: /etc/t18/hello
    content: {json.dumps(HELLO + chr(10))}
runcmd:
  - [sh, -c, "mkdir -p /var/lib/t18 && echo ran > /var/lib/t18/runcmd"]
"""
BOOT_TIMEOUT = 300
# How long an agent may take to apply a changed rule or port (it takes a few seconds).
APPLY_TIMEOUT = 60
VM_PYTHON = "/usr/bin/python3"
# Both scripts run inside an instance (as root, through sudo); the mark tells
# their probes from any other packet. 8 bytes: a VRRPv2 packet's authentication data.
MARK = "t18-mark"

# Counts, per source address, what reaches this instance for `seconds`:
# UDP datagrams to UDP_PORT, IP packets of a protocol (a number), or ARP replies.
RECEIVER = f"""
import json, socket, sys, time
kind, seconds = sys.argv[1], float(sys.argv[2])
mark = {MARK!r}.encode()
if kind == "arp":
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    sock.bind(("ens3", 0))
elif kind == "udp":
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", {UDP_PORT}))
else:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(kind))
sock.settimeout(0.2)
print("ready", flush=True)
counts = {{}}
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        data, address = sock.recvfrom(65535)
    except socket.timeout:
        continue
    if kind == "arp":
        if len(data) < 42 or data[20:22] != bytes([0, 2]):
            continue
        source = socket.inet_ntoa(data[28:32])
    elif mark in data:
        source = address[0]
    else:
        continue
    counts[source] = counts.get(source, 0) + 1
print(json.dumps(counts), flush=True)
"""

# Sends, from each source address, `count` frames to dst (whose MAC is dst_mac)
# on ens3, built whole (AF_PACKET) so that the source is exactly the one given:
# UDP datagrams, VRRPv2 advertisements (protocol 112) or ARP replies.
SENDER = f"""
import json, socket, struct, sys, time
spec = json.loads(sys.argv[1])
mark = {MARK!r}.encode()
own_mac = bytes.fromhex(open("/sys/class/net/ens3/address").read().strip().replace(":", ""))
dst_mac = bytes.fromhex(spec["dst_mac"].replace(":", ""))
dst = socket.inet_aton(spec["dst"])

def checksum(data):
    if len(data) % 2:
        data += bytes(1)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def ipv4(source, protocol, payload, ttl):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1800, 0, ttl, protocol, 0, source, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return dst_mac + own_mac + bytes([8, 0]) + header + payload

def frame(source):
    src = socket.inet_aton(source)
    if spec["kind"] == "arp":
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, own_mac, src, dst_mac, dst)
        return dst_mac + own_mac + bytes([8, 6]) + arp
    if spec["kind"] == "udp":
        return ipv4(src, 17, struct.pack("!HHHH", {UDP_PORT}, {UDP_PORT}, 8 + len(mark), 0) + mark, 64)
    # version 2, advertisement; virtual router 18, priority 100, one address, no auth, advert_int 1
    vrrp = struct.pack("!BBBBBBH4s", 0x21, 18, 100, 1, 0, 1, 0, socket.inet_aton("10.18.0.250")) + mark
    vrrp = vrrp[:6] + struct.pack("!H", checksum(vrrp)) + vrrp[8:]
    return ipv4(src, 112, vrrp, 255)

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("ens3", 0))
for _ in range(spec["count"]):
    for source in spec["sources"]:
        sock.send(frame(source))
    time.sleep(0.1)
"""


@dataclass
class Instance:
    name: str
    port_id: str
    address: str
    mac: str
    server_id: str = ""
    floating_ip: str = ""
    floating_ip_id: str = ""
    deleted: bool = False


@dataclass
class Lab:
    """The module's servers and what they stand on, and how to reach them."""

    cloud: LocalCloud
    demo: Any
    admin: Any
    key: Path
    network_id: str = ""
    subnet_id: str = ""
    router_id: str = ""
    ssh_group_id: str = ""
    lab_group_id: str = ""
    server_group_id: str = ""
    instances: dict[str, Instance] = field(default_factory=dict)

    @property
    def a(self) -> Instance:
        return self.instances["a"]

    @property
    def b(self) -> Instance:
        return self.instances["b"]

    def ssh_argv(self, instance: Instance, argv: list[str]) -> list[str]:
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            f"{IMAGE_USER}@{instance.floating_ip}",
            shlex.join(argv),
        ]

    def ssh(
        self, instance: Instance, argv: list[str], input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Runs argv on the instance over SSH through its floating IP, trying
        again while sshd does not answer (ssh's own failure is 255)."""
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                self.ssh_argv(instance, argv), input=input, capture_output=True, text=True, timeout=timeout + 60
            )
            if result.returncode != 255 or time.monotonic() > deadline:
                return result
            time.sleep(1)

    def instance_dir(self, instance: Instance) -> Path:
        return self.cloud.instance_dir(instance.server_id)

    def vm_state(self, instance: Instance) -> dict:
        return json.loads((self.instance_dir(instance) / "vm.json").read_text())

    def add_rule(self, **rule: Any) -> Any:
        return self.demo.network.create_security_group_rule(
            security_group_id=self.lab_group_id, direction="ingress", ethertype="IPv4", **rule
        )

    def delivered(self, kind: str, sources: list[str], seconds: float = 3) -> dict[str, int]:
        """What of A's probes from each source reaches B: B's receiver listens
        while A sends."""
        receiver = subprocess.Popen(
            self.ssh_argv(self.b, ["sudo", VM_PYTHON, "-", kind, str(seconds)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.stdin is not None and receiver.stdout is not None
            receiver.stdin.write(RECEIVER)
            receiver.stdin.close()
            ready = receiver.stdout.readline().strip()
            assert ready == "ready", (
                f"B's receiver did not start: {ready} {receiver.stderr.read() if receiver.stderr else ''}"
            )
            spec = {"kind": kind, "sources": sources, "dst": self.b.address, "dst_mac": self.b.mac, "count": 8}
            sent = self.ssh(self.a, ["sudo", VM_PYTHON, "-", json.dumps(spec)], input=SENDER)
            assert sent.returncode == 0, f"A's sender failed: {sent.stderr}"
            receiver.wait(timeout=seconds + 60)
            out = receiver.stdout.read()
            err = receiver.stderr.read() if receiver.stderr else ""
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
        assert receiver.returncode == 0, f"B's receiver failed: {err}"
        return {source: int(n) for source, n in json.loads(out.strip().splitlines()[-1]).items()}

    def ping(self, count: int = 3) -> subprocess.CompletedProcess:
        return self.ssh(self.a, ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", self.b.address])


def until(what: str, probe: Callable[[], Any], timeout: float = APPLY_TIMEOUT, interval: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s (last seen: {last!r})")
        time.sleep(interval)


def _build(lab: Lab, public_key: str) -> None:
    demo, admin = lab.demo, lab.admin
    external = demo.network.find_network("ext-net")
    assert external is not None, "make cloud seeds ext-net"
    ext_gateway = next(admin.network.subnets(network_id=external.id)).gateway_ip
    image = demo.image.find_image(IMAGE_NAME)
    flavor = demo.compute.find_flavor("m1.small")
    assert image is not None and flavor is not None, "make cloud seeds the image and the flavor"
    demo.compute.create_keypair(name=f"{RUN}-key", public_key=public_key)
    lab.network_id = demo.network.create_network(name=f"{RUN}-net").id
    lab.subnet_id = demo.network.create_subnet(
        name=f"{RUN}-subnet",
        network_id=lab.network_id,
        ip_version=4,
        cidr=SUBNET_CIDR,
        gateway_ip=GATEWAY,
        allocation_pools=[POOL],
    ).id
    router = demo.network.create_router(name=f"{RUN}-router", external_gateway_info={"network_id": external.id})
    lab.router_id = router.id
    demo.network.add_interface_to_router(router, subnet=lab.subnet_id)
    # SSH from this machine only, as the stack lets its jumphost be reached.
    ssh_group = demo.network.create_security_group(name=f"{RUN}-ssh", description="SSH from this machine")
    lab.ssh_group_id = ssh_group.id
    demo.network.create_security_group_rule(
        security_group_id=ssh_group.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix=f"{ext_gateway}/32",
    )
    # The group the tests add their rules to; at first it lets nothing in.
    lab.lab_group_id = demo.network.create_security_group(name=f"{RUN}-lab", description="the tests' rules").id
    for key in ("a", "b"):
        port = demo.network.create_port(
            name=f"{RUN}-port-{key}",
            network_id=lab.network_id,
            fixed_ips=[{"subnet_id": lab.subnet_id}],
            security_group_ids=[lab.ssh_group_id, lab.lab_group_id],
        )
        lab.instances[key] = Instance(
            name=f"{RUN}-{key}", port_id=port.id, address=port.fixed_ips[0]["ip_address"], mac=port.mac_address
        )
    # On two compute hosts where the cloud has them: every test's packets
    # then cross from one host's bridges to the other's.
    policy = "anti-affinity" if len(lab.cloud.hosts) > 1 else "soft-anti-affinity"
    lab.server_group_id = demo.compute.create_server_group(name=f"{RUN}-group", policy=policy).id
    for instance in lab.instances.values():
        instance.server_id = demo.compute.create_server(
            name=instance.name,
            image_id=image.id,
            flavor_id=flavor.id,
            networks=[{"port": instance.port_id}],
            key_name=f"{RUN}-key",
            user_data=base64.b64encode(USER_DATA.encode()).decode(),
            scheduler_hints={"group": lab.server_group_id},
        ).id
    for instance in lab.instances.values():
        server = demo.compute.get_server(instance.server_id)
        demo.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=2, wait=BOOT_TIMEOUT)
        floating = demo.network.create_ip(
            floating_network_id=external.id, port_id=instance.port_id, description=f"{instance.name}-fip"
        )
        instance.floating_ip, instance.floating_ip_id = floating.floating_ip_address, floating.id
    for instance in lab.instances.values():
        reached = lab.ssh(instance, ["true"], timeout=120)
        assert reached.returncode == 0, f"{instance.name}: no SSH through {instance.floating_ip}: {reached.stderr}"


def _leftovers(lab: Lab) -> list[str]:
    demo = lab.demo
    found = [f"server {s.name}" for s in demo.compute.servers() if s.name.startswith(RUN)]
    found += [f"port {p.name}" for p in demo.network.ports() if (p.name or "").startswith(RUN)]
    found += [
        f"floating IP {f.floating_ip_address}" for f in demo.network.ips() if (f.description or "").startswith(RUN)
    ]
    found += [f"router {r.name}" for r in demo.network.routers() if r.name.startswith(RUN)]
    found += [f"network {n.name}" for n in demo.network.networks() if n.name.startswith(RUN)]
    found += [f"security group {g.name}" for g in demo.network.security_groups() if g.name.startswith(RUN)]
    found += [f"key pair {k.name}" for k in demo.compute.keypairs() if k.name.startswith(RUN)]
    found += [f"server group {g.name}" for g in demo.compute.server_groups() if g.name.startswith(RUN)]
    return found


def _wait_gone(demo: Any, server_id: str) -> None:
    server = demo.compute.find_server(server_id)
    if server is not None:
        demo.compute.wait_for_delete(server, wait=180)


def _tear_down(lab: Lab) -> None:
    demo = lab.demo
    problems: list[str] = []

    def attempt(what: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            action(*args, **kwargs)
        except Exception as error:  # each goes on: the rest must still be deleted
            problems.append(f"{what}: {error}")

    alive = [i for i in lab.instances.values() if i.server_id and not i.deleted]
    for instance in alive:
        attempt(f"delete {instance.name}", demo.compute.delete_server, instance.server_id)
    for instance in alive:
        attempt(f"wait for {instance.name} to go", _wait_gone, demo, instance.server_id)
    for instance in lab.instances.values():
        if instance.floating_ip_id:
            attempt(f"delete {instance.name}'s floating IP", demo.network.delete_ip, instance.floating_ip_id)
        attempt(f"delete {instance.name}'s port", demo.network.delete_port, instance.port_id)
    if lab.router_id:
        if lab.subnet_id:
            attempt("detach the router", demo.network.remove_interface_from_router, lab.router_id, lab.subnet_id)
        attempt("delete the router", demo.network.delete_router, lab.router_id)
    if lab.network_id:
        attempt("delete the network", demo.network.delete_network, lab.network_id)
    for group in (lab.ssh_group_id, lab.lab_group_id):
        if group:
            attempt("delete a security group", demo.network.delete_security_group, group)
    attempt("delete the key pair", demo.compute.delete_keypair, f"{RUN}-key", ignore_missing=True)
    if lab.server_group_id:
        attempt("delete the server group", demo.compute.delete_server_group, lab.server_group_id)
    left = _leftovers(lab)
    assert not problems and not left, f"cleaning up failed: {problems}; left: {left}"


@pytest.fixture(scope="module")
def lab(local_cloud: LocalCloud, tmp_path_factory) -> Iterator[Lab]:
    """Servers A and B, booted from USER_DATA on ports of their own, each with a floating IP."""
    workdir = tmp_path_factory.mktemp("t18")
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", RUN, "-f", str(key)], check=True)
    lab = Lab(cloud=local_cloud, demo=local_cloud.demo(), admin=local_cloud.admin(), key=key)
    try:
        _build(lab, (workdir / "id_ed25519.pub").read_text())
        yield lab
    finally:
        _tear_down(lab)


@contextlib.contextmanager
def allowed_address_pair(lab: Lab, instance: Instance, address: str) -> Iterator[None]:
    lab.demo.network.update_port(instance.port_id, allowed_address_pairs=[{"ip_address": address}])
    try:
        yield
    finally:
        lab.demo.network.update_port(instance.port_id, allowed_address_pairs=[])


@contextlib.contextmanager
def rule(lab: Lab, **settings: Any) -> Iterator[None]:
    created = lab.add_rule(**settings)
    try:
        yield
    finally:
        lab.demo.network.delete_security_group_rule(created.id)


# --- the tests ----------------------------------------------------------------


def test_every_neutron_agent_is_alive(local_cloud):
    agents = list(local_cloud.admin().network.agents())

    assert {"Open vSwitch agent", "L3 agent"} <= {a.agent_type for a in agents}
    assert all(a.is_alive for a in agents), [(a.agent_type, a.host, a.is_alive) for a in agents]


def test_a_server_boots_active_on_a_bound_port_and_cloud_init_runs_its_user_data(lab):
    server = lab.admin.compute.get_server(lab.a.server_id)
    port = lab.admin.network.get_port(lab.a.port_id)

    assert server.status == "ACTIVE"
    assert port.status == "ACTIVE" and port.device_id == server.id
    assert port.binding_vif_type == "ovs", port.binding_vif_details
    assert port.binding_host_id == server.compute_host
    session = lab.ssh(lab.a, ["sh", "-c", "cloud-init status; hostname; cat /etc/t18/hello /var/lib/t18/runcmd"])
    assert session.returncode == 0, session.stderr
    assert session.stdout.splitlines() == ["status: done", lab.a.name, HELLO, "ran"]
    # The instance's disk is its directory under the cloud's; the console log is cloud-init's output.
    assert (lab.instance_dir(lab.a) / "etc" / "t18" / "hello").read_text() == HELLO + "\n"
    console = lab.demo.compute.get_server_console_output(server)["output"]
    assert "finished at" in console, console[-2000:]


def test_an_anti_affinity_group_puts_its_servers_on_two_hosts_each_port_on_its_hosts_bridge(lab):
    if len(lab.cloud.hosts) < 2:
        pytest.skip(f"a COMPUTE={lab.cloud.compute} cloud has one compute host")
    hosts = {key: lab.cloud.host_of(instance.server_id) for key, instance in lab.instances.items()}
    network = lab.admin.network.get_network(lab.network_id)

    assert hosts["a"] != hosts["b"]
    # A tenant network is a VLAN, which the hosts' tenant bridges carry between them.
    assert network.provider_network_type == "vlan", network.provider_network_type
    for key, instance in lab.instances.items():
        port = lab.admin.network.get_port(instance.port_id)
        assert port.binding_host_id == hosts[key].name
        assert port.binding_vif_details["bridge_name"] == hosts[key].integration_bridge
    # Each reaches the other across the hosts.
    with rule(lab, protocol="icmp", remote_ip_prefix=SUBNET_CIDR):
        for one, other in ((lab.a, lab.b), (lab.b, lab.a)):
            pinged = lab.ssh(one, ["ping", "-c", "3", "-W", "2", other.address])
            assert pinged.returncode == 0, f"{one.name} -> {other.name}: {pinged.stdout}{pinged.stderr}"


def test_a_floating_ip_reaches_the_instances_sshd_from_this_machine(lab):
    with socket.create_connection((lab.a.floating_ip, 22), timeout=10) as connection:
        banner = connection.recv(256)
    session = lab.ssh(lab.a, ["sh", "-c", 'hostname; echo "$SSH_CLIENT"; ip -o -4 addr show dev ens3'])

    assert banner.startswith(b"SSH-2.0-OpenSSH")
    assert session.returncode == 0, session.stderr
    hostname, client, nic = session.stdout.splitlines()
    assert hostname == lab.a.name
    # The instance sees this machine's address on ext-net, and only its own fixed address:
    # the floating IP is the router's NAT.
    assert client.split()[0] == next(lab.admin.network.subnets(network_id=_ext_net_id(lab))).gateway_ip
    assert f"inet {lab.a.address}/24" in nic and lab.a.floating_ip not in nic
    assert lab.demo.network.get_ip(lab.a.floating_ip_id).status == "ACTIVE"


def _ext_net_id(lab: Lab) -> str:
    return lab.demo.network.find_network("ext-net").id


def _dropped_until_allowed_pair(lab: Lab, kind: str, foreign: str) -> None:
    """A sends `kind` ("udp" datagrams or "arp" replies) from its own address
    and from `foreign`, which its port does not own: only its own reach B,
    until `foreign` is one of the port's allowed address pairs."""
    seen = until(
        f"A's {kind} from its own address did not reach B",
        lambda: (d := lab.delivered(kind, [lab.a.address, foreign])).get(lab.a.address) and d,
    )
    assert seen.get(foreign, 0) == 0, f"{kind} from {foreign}, which A's port does not own, got through"

    with allowed_address_pair(lab, lab.a, foreign):
        until(
            f"{kind} from {foreign} did not reach B once it is an allowed address pair",
            lambda: lab.delivered(kind, [foreign]).get(foreign),
        )


def test_port_security_drops_packets_from_an_address_the_port_does_not_own_until_it_is_an_allowed_pair(lab):
    # B's rule lets A's own datagrams in, so only port security can drop the foreign ones.
    with rule(lab, protocol="udp", port_range_min=UDP_PORT, port_range_max=UDP_PORT, remote_ip_prefix=SUBNET_CIDR):
        _dropped_until_allowed_pair(lab, "udp", FOREIGN_UDP)


def test_an_arp_reply_for_an_address_the_port_does_not_own_is_dropped_until_it_is_an_allowed_pair(lab):
    _dropped_until_allowed_pair(lab, "arp", FOREIGN_ARP)


def test_icmp_between_instances_is_blocked_without_a_rule_and_answered_with_one(lab):
    blocked = lab.ping()
    assert blocked.returncode == 1 and " 0 received" in blocked.stdout, blocked.stdout + blocked.stderr

    with rule(lab, protocol="icmp", remote_group_id=lab.lab_group_id):
        until("B did not answer A's ping with the ICMP rule", lambda: lab.ping(count=1).returncode == 0)


def test_a_running_ping_cut_by_its_rules_removal_is_answered_again_once_the_rule_is_back(lab):
    """Neutron's firewall marks a connection its rules no longer allow and
    drops it from then on; once a rule allows it again, the agent deletes
    what it marked and the connection starts afresh. One ping process is one
    connection for as long as it runs (its ICMP id): it must be answered
    again, as on the kernel's datapath. Here the switch tracks connections
    itself, and vip_cloud.ovs_conntrack makes the agent's deletion reach it."""
    pinger = Pinger(command=lab.ssh_argv(lab.a, Pinger.ping_argv(lab.b.address, 0.1)), track=lambda p: p, interval=0.1)
    pinger.start()
    try:
        with rule(lab, protocol="icmp", remote_group_id=lab.lab_group_id):
            answered = pinger.wait_for_reply(after=time.monotonic(), timeout=APPLY_TIMEOUT)
            assert answered is not None, "B never answered A's ping with the ICMP rule"
        until(
            "A's ping was still answered after its rule was deleted",
            lambda: pinger.wait_for_reply(after=time.monotonic() - 2, timeout=0.01) is None,
        )
        with rule(lab, protocol="icmp", remote_group_id=lab.lab_group_id):
            back = pinger.wait_for_reply(after=time.monotonic(), timeout=APPLY_TIMEOUT)
            assert back is not None, (
                f"the same ping was not answered again within {APPLY_TIMEOUT} s of its rule's return"
            )
    finally:
        pinger.stop()


def test_vrrp_between_instances_is_blocked_without_a_rule_and_let_through_with_one(lab):
    blocked = lab.delivered("112", [lab.a.address])
    assert blocked.get(lab.a.address, 0) == 0, "VRRP reached B with no rule for protocol 112"

    with rule(lab, protocol="112", remote_group_id=lab.lab_group_id):
        until(
            "A's VRRP advertisements did not reach B with the protocol 112 rule",
            lambda: lab.delivered("112", [lab.a.address]).get(lab.a.address),
        )


def _nova_compute_pids(lab: Lab, host: Any) -> list[int]:
    """The pids of the nova-compute of that compute host."""
    from vip_cloud.cleanup import cloud_processes
    from vip_cloud.services.nova import host_conf

    conf = str(host_conf(lab.cloud.dirs, host)).encode()
    found = []
    for pid in cloud_processes(lab.cloud.dirs):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"vip_cloud.nova_compute" in argv and conf in argv:
                found.append(pid)
    return found


def test_a_restarted_nova_compute_finds_its_instances_again(lab):
    if not lab.cloud.owned:
        skip_or_fail_in_ci(
            "the cloud was up before this session: someone may be using it, and a restart would disturb them"
        )
    holders = {key: lab.vm_state(i)["holder"]["pid"] for key, i in lab.instances.items()}
    host = lab.cloud.host_of(lab.a.server_id)
    (old,) = _nova_compute_pids(lab, host)

    killed_at = utc_now()
    os.kill(old, signal.SIGKILL)

    # The supervisor starts it again; the VMs run on meanwhile.
    until(
        "the supervisor did not start nova-compute again",
        lambda: [p for p in _nova_compute_pids(lab, host) if p != old],
    )
    assert all(Path(f"/proc/{pid}").exists() for pid in holders.values())
    # A nova-compute reports its state only once it has started (init_host,
    # where it adopts the VMs, then its RPC server). A reboot asked before
    # that is cleared as a transitional state left from before the restart.
    admin = lab.cloud.admin()
    until(
        "the new nova-compute never reported",
        lambda: [
            service
            for service in admin.compute.services(binary="nova-compute", host=host.name)
            if service.state == "up" and reported_after(service.updated_at, killed_at)
        ],
        timeout=BOOT_TIMEOUT,
        interval=2,
    )
    # The new nova-compute drives the VM it adopted: a reboot of A goes through it.
    lab.demo.compute.reboot_server(lab.a.server_id, "SOFT")
    until(
        "A was not rebooted by the new nova-compute",
        lambda: lab.vm_state(lab.a)["holder"] and lab.vm_state(lab.a)["holder"]["pid"] != holders["a"],
        timeout=BOOT_TIMEOUT,
        interval=2,
    )
    for instance in lab.instances.values():
        server = lab.demo.compute.get_server(instance.server_id)
        lab.demo.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=2, wait=BOOT_TIMEOUT)
    assert lab.vm_state(lab.b)["holder"]["pid"] == holders["b"], "B kept running through the restart of A's host"
    for instance in lab.instances.values():
        session = lab.ssh(instance, ["cloud-init", "status"])
        assert session.stdout.strip() == "status: done", session.stderr


# Last: it deletes B, which the tests above use.
def test_a_deleted_server_leaves_no_lab_host_behind(lab):
    from vip_cloud.services.openvswitch import ovs_env

    b = lab.b
    bridge = lab.cloud.host_of(b.server_id).integration_bridge
    namespace = f"labvm-{b.server_id}"
    inode = os.stat(f"/run/netns/{namespace}").st_ino
    tap = f"tap{b.port_id}"[:14]
    directory = lab.instance_dir(b)
    assert directory.is_dir() and _processes_in(inode), "B runs as a lab host before"

    deleted = subprocess.run(
        [str(lab.cloud.venv / "bin" / "openstack"), "server", "delete", "--wait", b.server_id],
        env=lab.cloud.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    b.deleted = True

    assert deleted.returncode == 0, deleted.stderr
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert namespace not in namespaces
    assert _processes_in(inode) == [], "no process is left in B's network namespace"
    assert not directory.exists()
    assert subprocess.run(["ip", "link", "show", "dev", tap], capture_output=True).returncode != 0
    ports = subprocess.run(
        ["ovs-vsctl", "list-ports", bridge],
        env={**os.environ, **ovs_env(lab.cloud.dirs)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tap not in ports


def _processes_in(netns_inode: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == netns_inode:
                    found.append(int(entry))
    return found
