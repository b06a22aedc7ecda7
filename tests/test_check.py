"""The check command over real SSH: Debian's OpenSSH server runs on the lab's
jumphost and nodes with a key made for the test, and the check runs from the
lab's router namespace (standing in for the user's machine) through the
jumphost, as against a deployment."""

import json
import os
import subprocess
import sys

import pytest

from vip_lab import drills
from vip_lab.cluster import Cluster
from vip_lab.consoles import LabConsoles
from vip_lab.results import RolloutResult
from vip_lab.scenario import rollout_spec, stack_spec
from vip_lab.topology import Lab, leftovers, new_run_prefix
from vip_stack.check import CheckError, parse_outputs
from vip_stack.hostkeys import HostKeyVerifier, KnownHosts
from vip_stack.observe import Pinger
from vip_stack.remote import RemoteError, Ssh
from vip_stack.rollout import SshAccess

from .harness import EXAMPLE_CONFIG, PROJECT_DIR


def test_missing_outputs_are_named():
    with pytest.raises(CheckError, match="no jumphostFloatingIp, nodes"):
        parse_outputs(json.dumps({"vipAddress": "192.168.0.254"}))
    with pytest.raises(CheckError, match="not JSON"):
        parse_outputs("Current stack outputs (8):")


def test_the_time_before_the_ping_started_is_no_gap_in_the_vip():
    # Two replies as ping prints them, then ping ends.
    replies = (
        "echo '64 bytes from 192.168.0.254: icmp_seq=1 ttl=64'; echo '64 bytes from 192.168.0.254: icmp_seq=2 ttl=64'"
    )
    pinger = Pinger(command=["sh", "-c", replies], track=lambda process: process)
    pinger.start()
    pinger._process.wait()
    pinger._thread.join(5)
    assert pinger.started_at is not None and len(pinger.replies) == 2
    # A window that opened a minute before the ping: only the ping's own silence counts.
    stats = pinger.stats(pinger.started_at - 60, pinger.replies[-1])
    assert (stats.sent, stats.received) == (2, 2)
    assert stats.longest_gap < 30


def test_advice_on_host_keys_is_commands_that_run_as_printed(tmp_path):
    known = tmp_path / "known_hosts"
    ssh = Ssh("203.0.113.5", user="debian", known_hosts_file=str(known))
    jumphost = ssh.explain("Host key verification failed.", "the jumphost (203.0.113.5)")
    assert f"`ssh-keygen -f {known} -R 203.0.113.5`" in jumphost
    assert f"`ssh -o UserKnownHostsFile={known} debian@203.0.113.5`" in jumphost
    node = ssh.explain("Host key verification failed.", "kld-vm-1 (10.0.0.11)", "10.0.0.11")
    assert f"`ssh-keygen -f {known} -R 10.0.0.11`" in node
    assert f"`ssh -o UserKnownHostsFile={known} -J debian@203.0.113.5 debian@10.0.0.11`" in node
    configured = Ssh("203.0.113.5", user="debian", config_file="/home/me/my config", known_hosts_file=str(known))
    assert "`ssh -F '/home/me/my config' -o" in configured.explain(
        "REMOTE HOST IDENTIFICATION HAS CHANGED", "the jumphost (203.0.113.5)"
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from .conftest import _need

    _need("sshd", "ssh", "keepalived", "cloud-init", root=True)
    tmp = tmp_path_factory.mktemp("check")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = stack_spec(EXAMPLE_CONFIG)
    with Lab() as lab:
        run = Cluster(spec, lab)
        run.boot()
        user = run.enable_ssh((tmp / "id_ed25519.pub").read_text())
        for node in spec.nodes:
            run.start(node.name)
        assert run.wait_holders(["kld-vm-1"], timeout=spec.master_down_interval(90) + 5)
        outputs = tmp / "outputs.json"
        outputs.write_text(json.dumps(run.outputs()))
        known_hosts = tmp / "known_hosts"
        config = tmp / "ssh_config"
        config.write_text(
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
            "  LogLevel ERROR\n"
        )
        # As a user who read each host's console (there is no Nova here to ask).
        trusted = HostKeyVerifier(
            KnownHosts(known_hosts, hashed=False), LabConsoles(run.hosts_by_instance), run.instances_by_address()
        )
        for address in run.instances_by_address():
            trusted.verify(address, address)
        yield {
            "run": run,
            "user": user,
            "outputs": outputs,
            "config": config,
            "known_hosts": known_hosts,
            "tmp": tmp,
            "spec": spec,
        }


def check(deployment, *extra, outputs=None):
    """Runs `python -m vip_stack.check` from the router namespace, the user's side of the jumphost."""
    argv = [
        "ip",
        "netns",
        "exec",
        deployment["run"].topology.switch.namespace,
        sys.executable,
        "-m",
        "vip_stack.check",
        "--outputs",
        str(outputs or deployment["outputs"]),
        "--user",
        deployment["user"],
        "--ssh-config",
        str(deployment["config"]),
        "--json",
        *extra,
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    )
    return result.returncode, json.loads(result.stdout), result


@pytest.mark.system
def test_the_check_reports_a_healthy_deployment(deployment):
    code, report, raw = check(deployment)
    assert code == 0, raw.stdout + raw.stderr
    assert report["passed"] and report["holders"] == ["kld-vm-1"]


@pytest.mark.system
def test_the_failover_drill_runs_over_ssh(deployment):
    code, report, raw = check(deployment, "--failover")
    assert code == 0, raw.stdout + raw.stderr
    spec = deployment["spec"]
    assert (report["stopped"], report["took_over"]) == ("kld-vm-1", "kld-vm-2")
    assert report["failover_s"] <= spec.master_down_interval(90) + 1, "plus the SSH round trip"
    assert report["pings_received"] > 0
    assert report["final_holder"] == ["kld-vm-1"], f"the master takes the VIP back; the check saw {raw.stdout}"


@pytest.mark.system
def test_a_changed_host_key_is_explained(deployment):
    hostile = deployment["tmp"] / "wrong_known_hosts"
    other = deployment["tmp"] / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    public = (deployment["tmp"] / "other_key.pub").read_text().split()
    hostile.write_text(f"{deployment['spec'].jumphost_address} {public[0]} {public[1]}\n")
    config = deployment["tmp"] / "hostile_config"
    config.write_text(deployment["config"].read_text().replace(str(deployment["known_hosts"]), str(hostile)))
    code, report, raw = check({**deployment, "config": config})
    assert code == 1
    jumphost = deployment["spec"].jumphost_address
    refused = report["failures"][0]
    assert "host key of the jumphost" in refused and "not the one trusted for it" in refused, refused
    assert f"`ssh-keygen -f {hostile} -R {jumphost}`" in refused


@pytest.mark.system
def test_an_unreachable_jumphost_is_explained(deployment):
    outputs = json.loads(deployment["outputs"].read_text())
    outputs["jumphostFloatingIp"] = "192.168.0.200"  # inside the lab's subnet, held by nobody
    path = deployment["tmp"] / "unreachable.json"
    path.write_text(json.dumps(outputs))
    code, report, raw = check(deployment, outputs=path)
    assert code == 1
    assert "cannot reach the jumphost (192.168.0.200) on port 22" in report["failures"][0]


class RouterSsh(Ssh):
    """OpenSSH from the lab's router namespace, the user's side of the jumphost."""

    namespace = ""

    def _base(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *super()._base()]


@pytest.mark.system
def test_a_rollout_drains_and_waits_over_ssh_through_the_jumphost_as_pulumi_up_does(tmp_path):
    """The gate's own SSH path: OpenSSH through the jumphost with the user's
    ssh config, checking keys strictly. Every host's key is trusted from its
    console on first contact, and every replaced node's new key replaces the
    old one in the user's known_hosts, so a later login by hand just works;
    a key the console did not print is refused."""
    from .conftest import _need

    _need("sshd", "ssh", "keepalived", "cloud-init", root=True)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = stack_spec(EXAMPLE_CONFIG)
    target = rollout_spec(EXAMPLE_CONFIG, {"virtualRouterId": 17}, spec)
    prefix = new_run_prefix()
    with Lab(prefix=prefix) as lab:
        run = Cluster(spec, lab, rollout_to=target)
        run.boot()
        user = run.enable_ssh((tmp_path / "id_ed25519.pub").read_text())
        assert drills.convergence(run).passed
        known_hosts = tmp_path / "known_hosts"
        config = tmp_path / "ssh_config"
        config.write_text(
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
            "  LogLevel ERROR\n"
        )
        namespace = run.topology.switch.namespace
        node_addresses = [node.address for node in spec.nodes]

        def access_per_step() -> SshAccess:
            # As the gate does: its own connections for every create or delete,
            # each node it replaces trusted anew from its console.
            step = RouterSsh(spec.jumphost_address, user=user, config_file=str(config))
            step.namespace = namespace
            step.verifier = HostKeyVerifier(
                step.known_hosts,
                LabConsoles(run.hosts_by_instance),
                run.instances_by_address(),
                recreated=node_addresses,
            )
            return SshAccess(step)

        run.node_access = access_per_step

        result = drills.rollout(run)

        assert result.passed, result.verdict()
        assert isinstance(result, RolloutResult)
        assert [step.node for step in result.steps] == ["kld-vm-2", "kld-vm-1"]
        for step in result.steps:
            assert any("keepalived stopped" in note for note in step.drain), step.drain
        # The user's own OpenSSH, nothing else: the new keys are the known ones.
        plain = RouterSsh(spec.jumphost_address, user=user, config_file=str(config))
        plain.namespace = namespace
        master = spec.node("kld-vm-1").address
        assert plain.run(plain.on_node(master, "true"), host="kld-vm-1", address=master).returncode == 0
        # A key swapped after boot is not the one the console printed.
        run.topology.nodes["kld-vm-1"].run(["sh", "-c", "rm -f /etc/ssh/ssh_host_*_key* && ssh-keygen -A"])
        known_hosts.unlink()
        first_contact = access_per_step()
        with pytest.raises(RemoteError, match="not the one it printed on its console"):
            first_contact.run(master, "kld-vm-1", "true", timeout=30)
    assert leftovers(prefix) == {"namespaces": [], "processes": []}
