"""The user's whole life cycle, for real, on virtual machines: this project
run by the real Pulumi CLI and OpenStack provider (make engine) against the
local OpenStack whose instances are virtual machines of Nova's libvirt driver
(make cloud COMPUTE=libvirt) booting Debian 12, in the order a user goes, on
a fresh local backend. Each node installs keepalived from the cloud's mirror
at boot through our user data; the steps then reboot, roll out, and crash
them. Each test is one step and builds on the ones before it; the module's
fixture destroys whatever is left if a step fails.

What needs many fast boots (a second kind of rolling update, the rollout that
stops, a stack reference, an existing network) and what does not depend on
what an instance is (a second run that changes nothing) runs on lab hosts,
in tests/test_stack_on_lab_hosts.py: a boot here takes minutes under TCG,
and CI's time is counted."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.local_stack import (
    FINAL_MESSAGE,
    PASSWORD,
    assert_one_node_at_a_time,
    config_set,
    destroy_leaving_nothing,
    journey_on,
    replaced_in_order,
    roll_out,
    stack_resources,
    start_stack,
    timed,
)
from tests.test_program import OUTPUT_KEYS
from vip_stack.rendering import KEEPALIVED_DROPIN_PATH, VRRP_INTERFACE_CONF_PATH
from vip_stack.vrrp import master_down_interval, version_for

# The real engine (make engine) against the local cloud (make cloud COMPUTE=libvirt).
pytestmark = [pytest.mark.engine, pytest.mark.cloud]

OUTPUTS = OUTPUT_KEYS - {"vipFloatingIp"}
NEW_PASSWORD = "n3wpass1"
# A reboot under TCG: the guest's shutdown, its boot and keepalived's start.
REBOOT_TIMEOUT = 600
# A `pulumi up` that boots guests: longer than the stack file's
# rolloutTimeoutSeconds (900), so that a node that never serves fails the
# stack's own wait, which names it, before the test interrupts the engine.
VM_UP_TIMEOUT = 1500
ADVERT_INTERVAL = 1.0


def crash_bound(backup_priority: int) -> float:
    """The lab's crash drill's bound: the backup's master down interval
    after the master's last advert, plus one advert interval."""
    version = version_for(ADVERT_INTERVAL)
    return master_down_interval(version, ADVERT_INTERVAL, backup_priority) + ADVERT_INTERVAL


@pytest.fixture(scope="module")
def journey(local_cloud_vms, engine_home, tmp_path_factory):
    with journey_on(local_cloud_vms, engine_home, tmp_path_factory.mktemp("lifecycle")) as found:
        yield found


def node(journey, name: str) -> dict:
    return next(n for n in journey.outputs["nodes"] if n["name"] == name)


def boot_id(journey, name: str) -> str:
    return journey.user.on_node(journey.outputs, name, "cat /proc/sys/kernel/random/boot_id").stdout.strip()


def wait_until(what: str, condition, timeout: float, interval: float = 3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as error:  # noqa: BLE001 - a guest still booting refuses SSH
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout:.0f} s; last seen: {last!r}")


def wait_holders(journey, expected: list[str], timeout: float, skip: tuple[str, ...] = ()) -> None:
    wait_until(
        f"the VIP held by {expected} alone",
        lambda: journey.user.holders(journey.outputs, skip=skip) == expected,
        timeout,
    )


def reboot(journey, name: str, kind: str) -> float:
    """`openstack server reboot` (SOFT or HARD) of a node, as its user; returns
    the seconds until the node is back with keepalived active."""
    before = boot_id(journey, name)
    demo = journey.user.connect("local")
    server = demo.compute.get_server(node(journey, name)["instanceId"])
    started = time.monotonic()
    demo.compute.reboot_server(server, kind)
    wait_until(f"{name} rebooted", lambda: boot_id(journey, name) not in ("", before), REBOOT_TIMEOUT)
    active = journey.user.on_node(journey.outputs, name, "systemctl is-active keepalived", timeout=120)
    assert active.stdout.strip() == "active", f"keepalived did not start by itself on {name}: {active.stdout}"
    return round(time.monotonic() - started, 1)


def test_a_user_sets_the_stack_up_from_the_local_stack_file(journey):
    config = start_stack(journey)
    assert config["keepalived-vip:imageName"]["value"] == "debian-12"
    assert config["keepalived-vip:sshUser"]["value"] == "debian"
    assert config["keepalived-vip:vrrpPassword"]["secret"] is True


def test_up_boots_three_virtual_machines_and_returns_with_the_vip_served(journey, local_cloud_vms):
    stack = journey.stack
    try:
        first_up = timed(lambda: stack.up(event_log=journey.user.root / "up.jsonl", timeout=VM_UP_TIMEOUT))
    except Exception:
        # Before the module's teardown destroys the guests: what a boot that
        # got no address leaves (docs/cloud.md, one first boot in CI).
        print(local_cloud_vms.diagnostics())
        raise
    print(f"figure: first pulumi up on virtual machines {first_up.seconds} s")
    outputs = journey.outputs = stack.outputs()
    assert set(outputs) == OUTPUTS
    admin = local_cloud_vms.admin()
    hypervisors = {h.hypervisor_type for h in admin.compute.hypervisors(details=True)}
    assert hypervisors == {"QEMU"}, "the instances are libvirt's qemu guests"
    for each in outputs["nodes"]:
        server = admin.compute.get_server(each["instanceId"])
        assert server.status == "ACTIVE", server.fault
        port = admin.network.get_port(each["portId"])
        assert port.status == "ACTIVE" and port.binding_vif_type == "ovs"
        journey.instance_ids.add(each["instanceId"])
    # waitForService: up returned once a node held the VIP.
    assert journey.user.holders(outputs) == ["kld-vm-1"]


def test_each_node_installed_keepalived_from_the_mirror_and_runs_it_with_our_drop_in(journey, local_cloud_vms):
    from vip_cloud.services import mirror

    outputs, user = journey.outputs, journey.user
    served = mirror.transfers(local_cloud_vms.dirs)
    assert re.search(r"keepalived_[^ ]+_amd64\.deb", served), "the mirror's log shows keepalived's download"
    # One SSH connection a node (each is seconds under TCG): the answers
    # come back between markers, in the order asked.
    questions = {
        "cloud-init": "cloud-init status --long",
        "package": "dpkg-query -W -f='${Status}' keepalived",
        "origin": "apt-cache policy keepalived",
        "active": "systemctl is-active keepalived",
        "drop-ins": "systemctl show keepalived -p DropInPaths",
        "default route": "ip -4 route show default",
        "interface": f"sudo cat {VRRP_INTERFACE_CONF_PATH}",
    }
    script = "; ".join(f"echo '@@ {key}'; {command}" for key, command in questions.items())
    for each in outputs["nodes"]:
        name = each["name"]
        result = user.on_node(outputs, name, script, timeout=120)
        answered = (part.partition("\n") for part in result.stdout.split("@@ ")[1:])
        answers = {key: value.strip() for key, _, value in answered}
        assert set(answers) == set(questions), f"{name} answered {result.stdout!r} {result.stderr!r}"
        assert "status: done" in answers["cloud-init"], name
        assert answers["package"] == "install ok installed", name
        assert "172.24.4.1:3142" in answers["origin"], f"{name}'s keepalived came from the cloud's mirror: {answers}"
        assert answers["active"] == "active", name
        assert KEEPALIVED_DROPIN_PATH in answers["drop-ins"], name
        default_dev = answers["default route"].split(" dev ")[1].split()[0]
        assert answers["interface"] == f"$VRRP_INTERFACE={default_dev}", name
    # Their addresses came from Neutron's DHCP agent.
    leases = "".join(path.read_text() for path in (local_cloud_vms.dirs.logs / "dnsmasq").glob("*/*"))
    for each in outputs["nodes"]:
        assert re.search(rf"DHCPACK\(\S+\) {re.escape(each['ipAddress'])} ", leases), each["name"]


def test_every_console_log_holds_cloud_inits_final_line(journey):
    demo = journey.user.connect("local")
    for server in demo.compute.servers():
        if server.id not in journey.instance_ids and server.name != "kld-jumphost-vm":
            continue
        console = demo.compute.get_server_console_output(server)["output"]
        final = FINAL_MESSAGE.search(console)
        assert final, f"{server.name}'s console log has no cloud-init final line:\n{console[-2000:]}"
        print(f"figure: {server.name} cloud-init done at {final.group(1)} s of uptime")


def test_the_tutorials_check_passes_through_the_jumphosts_floating_ip(journey):
    result = journey.user.check(journey.stack, "--failover", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the jumphost's pings resumed" in result.stdout, "a stopped master handed the VIP over"
    assert "all checks passed" in result.stdout


def test_a_rolling_update_to_a_new_password_without_preemption_replaces_one_node_at_a_time(journey):
    stack = journey.stack
    config_set(stack, "vrrpPassword", NEW_PASSWORD, "--secret")
    config_set(stack, "preempt", False)
    log = journey.user.root / "rollout.jsonl"
    rollout = roll_out(journey.user, stack, log, timeout=VM_UP_TIMEOUT)
    gap = rollout.pings.longest_gap
    print(f"figure: rolling update on virtual machines {rollout.seconds} s, longest ping gap {gap:.3f} s")
    assert_one_node_at_a_time(replaced_in_order(log), ["kld-vm-2", "kld-vm-1"])
    # The VIP keeps answering, with no gap longer than a crash's failover.
    # Not the lab hosts' 0.2 s: under TCG each of the rollout's SSH steps
    # takes about a second, and a successor it cannot reach in time falls
    # back to the plain drain (0.244 s measured with the handover, 1.98 s
    # before it).
    assert gap < crash_bound(90), rollout.pings
    journey.outputs = stack.outputs()
    new_ids = {n["instanceId"] for n in journey.outputs["nodes"]}
    assert not new_ids & journey.instance_ids, "every node was replaced"
    journey.instance_ids |= new_ids
    holders = journey.user.holders(journey.outputs)
    assert len(holders) == 1, f"the VIP is held by {holders or 'no node'}"


def test_a_soft_rebooted_holder_starts_keepalived_by_itself_and_leaves_the_vip_with_the_backup(journey):
    # One reboot, soft: a hard one is os-vif's unplug and plug, which every
    # new instance already goes through, while a soft one keeps the port and
    # needs the cloud's tap_replug (the userspace datapath's stale device).
    holder = journey.user.holders(journey.outputs)[0]
    other = next(n["name"] for n in journey.outputs["nodes"] if n["name"] != holder)
    seconds = reboot(journey, holder, "SOFT")
    print(f"figure: soft reboot of the holder to keepalived active {seconds} s")
    wait_holders(journey, [other], 60)
    # Back in the group as BACKUP without preemption, it does not take the VIP back.
    time.sleep(10)
    assert journey.user.holders(journey.outputs) == [other]


def test_a_crashed_holders_vip_moves_to_the_backup_within_the_crash_bound(journey):
    outputs, user = journey.outputs, journey.user
    holder = user.holders(outputs)[0]
    backup = next(n for n in outputs["nodes"] if n["name"] != holder)
    bound = crash_bound(backup["priority"])
    pinger = user.ping_vip(outputs)
    try:
        ssh = user.ssh(outputs)
        # The guest's kernel panics: the command never returns.
        crash = subprocess.Popen(
            ssh.on_node(node(journey, holder)["ipAddress"], "echo c | sudo tee /proc/sysrq-trigger"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        crashed = time.monotonic()
        wait_holders(journey, [backup["name"]], 60, skip=(holder,))
        time.sleep(2)
        ended = time.monotonic()
        crash.kill()
        crash.wait()
        gap = pinger.stats(crashed - 1, ended).longest_gap
    finally:
        pinger.stop()
    print(f"figure: crash of the holder, longest ping gap {gap:.3f} s (bound {bound:.2f} s)")
    assert gap <= bound, f"the VIP was unanswered {gap:.2f} s after {holder} crashed (bound {bound:.2f} s)"
    console = user.connect("local").compute.get_server_console_output(node(journey, holder)["instanceId"])
    assert "sysrq: Trigger a crash" in console["output"], "the guest's kernel did crash"


def test_the_state_holds_no_secret_in_clear(journey):
    exported = journey.stack.run("stack", "export")
    # What only a node's user data holds (the jumphost's installs ping and
    # holds nothing secret: it is in the state as it is).
    for clear in (PASSWORD, NEW_PASSWORD, "auth_pass", "vrrp_instance", "write_files"):
        assert clear not in exported, f"{clear!r} is in the state in clear"
    assert NEW_PASSWORD in json.dumps(journey.stack.config()), "the password is set (its absence above means something)"


def test_destroy_leaves_nothing_of_the_stack_nor_of_its_virtual_machines(journey, local_cloud_vms):
    assert len([r for r in stack_resources(journey.stack) if r[0].endswith("Instance")]) == 3
    destroyed = destroy_leaving_nothing(journey, local_cloud_vms)
    print(f"figure: pulumi destroy of virtual machines {destroyed.seconds} s")
    journey.stack.run("stack", "rm", "--yes", "local")
