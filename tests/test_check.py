"""The check command over real SSH: Debian's OpenSSH server runs on the lab's
jumphost and nodes with a key made for the test, and the check runs from the
lab's router namespace (standing in for the user's machine) through the
jumphost, as against a deployment."""

import json
import os
import subprocess
import sys

import pytest

from vip_stack.check import CheckError, parse_outputs
from vip_stack.lab.drills import LabRun
from vip_stack.lab.hosts import Lab
from vip_stack.lab.scenario import stack_spec

from .harness import EXAMPLE_CONFIG, PROJECT_DIR


def test_missing_outputs_are_named():
    with pytest.raises(CheckError, match="no jumphostFloatingIp, nodes"):
        parse_outputs(json.dumps({"vipAddress": "192.168.0.254"}))
    with pytest.raises(CheckError, match="not JSON"):
        parse_outputs("Current stack outputs (8):")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from .conftest import _need

    _need("sshd", "ssh", "keepalived", "cloud-init", root=True)
    tmp = tmp_path_factory.mktemp("check")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = stack_spec(EXAMPLE_CONFIG)
    with Lab() as lab:
        run = LabRun(spec, lab, progress=None)
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


def test_the_check_reports_a_healthy_deployment(deployment):
    code, report, raw = check(deployment)
    assert code == 0, raw.stdout + raw.stderr
    assert report["passed"] and report["holders"] == ["kld-vm-1"]


def test_the_failover_drill_runs_over_ssh(deployment):
    code, report, raw = check(deployment, "--failover")
    assert code == 0, raw.stdout + raw.stderr
    spec = deployment["spec"]
    assert (report["stopped"], report["took_over"]) == ("kld-vm-1", "kld-vm-2")
    assert report["failover_s"] <= spec.master_down_interval(90) + 1, "plus the SSH round trip"
    assert report["pings_received"] > 0
    assert report["final_holder"] == ["kld-vm-1"], "the master takes the VIP back"


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
    assert "host key" in report["failures"][0] and "ssh-keygen -R" in report["failures"][0]


def test_an_unreachable_jumphost_is_explained(deployment):
    outputs = json.loads(deployment["outputs"].read_text())
    outputs["jumphostFloatingIp"] = "192.168.0.200"  # inside the lab's subnet, held by nobody
    path = deployment["tmp"] / "unreachable.json"
    path.write_text(json.dumps(outputs))
    code, report, raw = check(deployment, outputs=path)
    assert code == 1
    assert "cannot reach the jumphost (192.168.0.200) on port 22" in report["failures"][0]
