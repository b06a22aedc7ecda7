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
from vip_lab.results import RolloutResult
from vip_lab.scenario import rollout_spec, stack_spec
from vip_lab.topology import Lab, leftovers, new_run_prefix
from vip_stack.check import CheckError, parse_outputs
from vip_stack.remote import RemoteError, Ssh
from vip_stack.rollout import SshAccess

from .harness import EXAMPLE_CONFIG, PROJECT_DIR


def test_missing_outputs_are_named():
    with pytest.raises(CheckError, match="no jumphostFloatingIp, nodes"):
        parse_outputs(json.dumps({"vipAddress": "192.168.0.254"}))
    with pytest.raises(CheckError, match="not JSON"):
        parse_outputs("Current stack outputs (8):")


def test_advice_on_host_keys_is_commands_that_run_as_printed():
    ssh = Ssh("203.0.113.5", user="debian")
    jumphost = ssh.explain("Host key verification failed.", "the jumphost (203.0.113.5)")
    assert "`ssh-keygen -R 203.0.113.5`" in jumphost and "`ssh debian@203.0.113.5`" in jumphost
    node = ssh.explain("Host key verification failed.", "kld-vm-1 (10.0.0.11)", "10.0.0.11")
    assert "`ssh-keygen -R 10.0.0.11`" in node and "`ssh -J debian@203.0.113.5 debian@10.0.0.11`" in node
    configured = Ssh("203.0.113.5", user="debian", config_file="/home/me/my config")
    assert "`ssh -F '/home/me/my config' debian@203.0.113.5`" in configured.explain(
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
            "  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n"
        )
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
    assert "host key" in report["failures"][0] and f"`ssh-keygen -R {jumphost}`" in report["failures"][0]


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
    ssh config, whose known_hosts checks strictly. Every replaced node comes
    back with a new host key; the rollout keeps the nodes' keys apart and
    still checks the jumphost's."""
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

        def ssh_config(checking: str) -> None:
            config.write_text(
                f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
                f"  StrictHostKeyChecking {checking}\n  LogLevel ERROR\n"
            )

        ssh = RouterSsh(spec.jumphost_address, user=user, config_file=str(config))
        ssh.namespace = run.topology.switch.namespace
        ssh_config("accept-new")  # the user has logged in once: every key is known
        for node in spec.nodes:
            assert ssh.run(ssh.on_node(node.address, "true"), host=node.name).returncode == 0
        ssh_config("yes")
        steps = iter(range(100))

        def access_per_step() -> SshAccess:
            # As the gate does: a known_hosts of its own for every create or delete.
            step = RouterSsh(
                spec.jumphost_address,
                user=user,
                config_file=str(config),
                node_known_hosts=str(tmp_path / f"rollout-{next(steps)}-known_hosts"),
            )
            step.namespace = ssh.namespace
            return SshAccess(step)

        run.node_access = access_per_step

        result = drills.rollout(run)

        assert result.passed, result.verdict()
        assert isinstance(result, RolloutResult)
        assert [step.node for step in result.steps] == ["kld-vm-2", "kld-vm-1"]
        for step in result.steps:
            assert any("keepalived stopped" in note for note in step.drain), step.drain
        # With the user's own known_hosts the replaced node's new key is refused.
        plain = RouterSsh(spec.jumphost_address, user=user, config_file=str(config))
        plain.namespace = ssh.namespace
        with pytest.raises(RemoteError, match="host key"):
            plain.run(plain.on_node(spec.node("kld-vm-1").address, "true"), host="kld-vm-1")
    assert leftovers(prefix) == {"namespaces": [], "processes": []}
