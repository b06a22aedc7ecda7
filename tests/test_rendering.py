"""keepalived.conf and cloud-config as rendered, checked by the real tools:
Debian's `keepalived -t` in a namespace that has the interface, and
`cloud-init schema`."""

import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vip_hosts.netns import ProbeHost
from vip_stack.rendering import (
    HEALTH_CHECK_NAME,
    HEALTH_CHECK_PATH,
    KEEPALIVED_CONF_PATH,
    KEEPALIVED_DROPIN_PATH,
    NOTIFY_LOG_PATH,
    NOTIFY_SCRIPT_PATH,
    SCRIPT_USER,
    VRRP_INTERFACE_CONF_PATH,
    VRRP_INTERFACE_SCRIPT_PATH,
    VRRP_STATE_PATH,
    KeepalivedConfig,
    VrrpGroup,
    plan_keepalived,
    render_keepalived_conf,
    render_notify_script,
    render_user_data,
    vrrp_interface_script,
)
from vip_stack.settings import parse_settings

from . import golden_files
from .harness import PROJECT_DIR

REQUIRED = {"flavorName": "STD2-1-2", "sshAllowedCidrs": ["198.51.100.0/24"], "vrrpPassword": "s3cr3t"}
TWO_NODES = [{"name": "kld-vm-1", "priority": 120}, {"name": "kld-vm-2", "priority": 90}]
THREE_NODES = TWO_NODES + [{"name": "kld-vm-3", "priority": 60}]
ADDRESSES = {"kld-vm-1": "192.168.0.11", "kld-vm-2": "192.168.0.22", "kld-vm-3": "192.168.0.33"}


def configs(mode="unicast", nodes=TWO_NODES, advert="1", interface=""):
    settings = parse_settings(
        {**REQUIRED, "vrrpMode": mode, "nodes": nodes, "advertInterval": advert, "vrrpInterface": interface}
    )
    return plan_keepalived(
        VrrpGroup.of(settings), ADDRESSES, "192.168.0.0/24", settings.vrrp_password.get_secret_value()
    )


def by_name(rendered, name):
    return next(c for c in rendered if c.router_id == name)


def test_the_reference_procedures_values_by_default():
    master = render_keepalived_conf(configs(mode="multicast", interface="ens3")[0])
    for line in [
        "router_id kld-vm-1",
        "state MASTER",
        "interface ens3",
        "virtual_router_id 254",
        "priority 120",
        "advert_int 1",
        "auth_type PASS",
        "auth_pass s3cr3t",
        "192.168.0.254/24 dev ens3",
    ]:
        assert line in master
    backup = render_keepalived_conf(configs(mode="multicast", interface="ens3")[1])
    assert "state BACKUP" in backup and "priority 90" in backup
    assert "unicast" not in master


def test_unicast_lists_every_other_node_as_a_peer():
    for config in configs(nodes=THREE_NODES):
        own = ADDRESSES[config.router_id]
        assert config.unicast_src_ip == own
        assert sorted(config.unicast_peers) == sorted(a for a in ADDRESSES.values() if a != own)
        text = render_keepalived_conf(config)
        assert f"unicast_src_ip {own}" in text
        for peer in config.unicast_peers:
            assert f"        {peer}\n" in text


def test_only_the_highest_priority_starts_as_master():
    assert [c.state for c in configs(nodes=THREE_NODES)] == ["MASTER", "BACKUP", "BACKUP"]


def test_a_sub_second_interval_renders_vrrp_v3_without_authentication():
    text = render_keepalived_conf(configs(advert="0.2")[0])
    assert "vrrp_version 3" in text
    assert "advert_int 0.2" in text
    assert "authentication" not in text and "s3cr3t" not in text


def test_an_unset_interface_is_found_at_boot():
    text = render_keepalived_conf(configs()[0])
    assert f"include {VRRP_INTERFACE_CONF_PATH}" in text
    assert "interface $VRRP_INTERFACE" in text
    files = {f["path"]: f for f in yaml.safe_load(render_user_data(configs()[0]))["write_files"]}
    assert files[VRRP_INTERFACE_SCRIPT_PATH]["permissions"] == "0755"
    assert VRRP_INTERFACE_SCRIPT_PATH in files[KEEPALIVED_DROPIN_PATH]["content"]


def test_a_set_interface_is_written_as_is():
    text = render_keepalived_conf(configs(interface="eth1")[0])
    assert "include" not in text and "$VRRP_INTERFACE" not in text
    assert "interface eth1" in text
    paths = [f["path"] for f in yaml.safe_load(render_user_data(configs(interface="eth1")[0]))["write_files"]]
    assert paths == [KEEPALIVED_CONF_PATH, NOTIFY_SCRIPT_PATH]


def test_the_user_data_installs_keepalived_and_writes_its_config_privately():
    config = configs()[0]
    user_data = render_user_data(config)
    assert user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(user_data)
    assert "keepalived" in document["packages"]
    conf = next(f for f in document["write_files"] if f["path"] == KEEPALIVED_CONF_PATH)
    assert conf["permissions"] == "0600" and conf["owner"] == "root:root"
    assert conf["content"] == render_keepalived_conf(config)
    assert ["systemctl", "enable", "keepalived"] in document["runcmd"]
    assert ["systemctl", "restart", "keepalived"] in document["runcmd"]


def test_no_value_can_break_the_cloud_config():
    # Bypasses validation on purpose: even text YAML treats specially comes
    # back out of the document unchanged.
    hostile = "a: b\n- [x]\n  \"quoted\" 'single' #not-a-comment\n{{ jinja }} \\ \t\u2028 @&*!%|>"
    config = KeepalivedConfig(
        router_id=hostile,
        state="MASTER",
        priority=100,
        interface=None,
        virtual_router_id=1,
        advert_interval=1,
        vrrp_version=2,
        auth_pass=hostile,
        vip_cidr="192.0.2.1/24",
        unicast_src_ip=None,
        unicast_peers=(),
    )
    document = yaml.safe_load(render_user_data(config))
    conf = next(f for f in document["write_files"] if f["path"] == KEEPALIVED_CONF_PATH)
    assert conf["content"] == render_keepalived_conf(config)
    assert hostile in conf["content"]


MATRIX = list(itertools.product(["unicast", "multicast"], [TWO_NODES, THREE_NODES], ["1", "0.2"], ["", "ens3"]))
MATRIX_IDS = [f"{m}-{len(n)}nodes-v{2 if a == '1' else 3}-{i if i else 'detected'}" for m, n, a, i in MATRIX]
HEALTH = {"command": "curl -fsS http://127.0.0.1:8080/healthz", "interval": 1, "fall": 3, "rise": 2}
FEATURES = {
    "no-preempt": {"preempt": False},
    "health-check": {"healthCheck": HEALTH},
    "notify": {"notifyCommand": 'logger -t vip "now $1"'},
    "all-v3": {"preempt": False, "healthCheck": HEALTH, "notifyCommand": "true", "advertInterval": "0.2"},
}


def feature_configs(changes):
    settings = parse_settings({**REQUIRED, **changes})
    return plan_keepalived(
        VrrpGroup.of(settings), ADDRESSES, "192.168.0.0/24", settings.vrrp_password.get_secret_value()
    )


def install_etc_keepalived(config, directory):
    """The files the user data writes under /etc/keepalived, with their modes."""
    directory.mkdir()
    for written in yaml.safe_load(render_user_data(config))["write_files"]:
        if written["path"].startswith("/etc/keepalived/"):
            target = directory / written["path"].removeprefix("/etc/keepalived/")
            target.write_text(written["content"])
            target.chmod(int(written["permissions"], 8))


def script_user_binds(tmp_path):
    """/etc/passwd and /etc/group with the script user cloud-init would create."""
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text(Path("/etc/passwd").read_text() + f"{SCRIPT_USER}:x:997:997::/nonexistent:/usr/sbin/nologin\n")
    group.write_text(Path("/etc/group").read_text() + f"{SCRIPT_USER}:x:997:\n")
    return {"/etc/passwd": passwd, "/etc/group": group}


# What keepalived prints about a config it does not fully accept.
COMPLAINTS = re.compile(r"warning|error|unable|unknown|not used|truncat|ignoring", re.IGNORECASE)


def keepalived_config_test(config, host, tmp_path):
    """`keepalived -t`, except where Debian 12's keepalived 2.2.7 cannot: its
    config test kills itself as soon as a vrrp_script is configured (fixed in
    2.2.8, acassen/keepalived#2587). Those configs are checked by running the
    daemon itself for a few seconds and reading what it says."""
    etc_keepalived = tmp_path / config.router_id
    install_etc_keepalived(config, etc_keepalived)
    binds = {"/etc/keepalived": etc_keepalived}
    if config.uses_scripts:
        binds.update(script_user_binds(tmp_path))
    if config.interface is None:
        detected = host.run(["sh", VRRP_INTERFACE_SCRIPT_PATH], binds=binds)
        assert detected.returncode == 0, detected.stderr
    if config.health_check is None:
        return host.run(["keepalived", "-t", "-f", KEEPALIVED_CONF_PATH], binds=binds)
    for private in ("run", "log"):
        (tmp_path / private).mkdir(exist_ok=True)
    binds.update({"/run": tmp_path / "run", "/var/log": tmp_path / "log"})
    ran = host.run(
        [
            "timeout",
            "-s",
            "TERM",
            str(2 + config.health_check.interval),
            "keepalived",
            "--dont-fork",
            "--log-console",
            "-f",
            KEEPALIVED_CONF_PATH,
        ],
        binds=binds,
        timeout=30,
    )
    output = ran.stdout + ran.stderr
    complaints = [
        line
        for line in output.splitlines()
        if COMPLAINTS.search(line) and "now returning" not in line and "VRRP_Script" not in line
    ]
    started = "Startup complete" in output
    script_ran = (
        f"Script `{HEALTH_CHECK_NAME}` now returning" in output or f"VRRP_Script({HEALTH_CHECK_NAME})" in output
    )
    return subprocess.CompletedProcess(
        ran.args, 0 if started and script_ran and not complaints else 1, output, "\n".join(complaints) or output
    )


@pytest.mark.system
@pytest.mark.parametrize("mode,nodes,advert,interface", MATRIX, ids=MATRIX_IDS)
def test_every_rendered_config_passes_keepalived_config_test(mode, nodes, advert, interface, root_namespaces, tmp_path):
    for config in configs(mode, nodes, advert, interface):
        address = ADDRESSES[config.router_id] + "/24"
        with ProbeHost(next(root_namespaces), interface="ens3", address=address) as host:
            checked = keepalived_config_test(config, host, tmp_path)
        assert checked.returncode == 0, f"{config.router_id}: {checked.stderr}"
        assert "WARNING" not in checked.stderr, checked.stderr


@pytest.mark.system
@pytest.mark.parametrize("feature", FEATURES)
def test_every_feature_passes_keepalived_config_test(feature, root_namespaces, tmp_path):
    config = feature_configs(FEATURES[feature])[0]
    with ProbeHost(next(root_namespaces), interface="ens3", address="192.168.0.11/24") as host:
        checked = keepalived_config_test(config, host, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "WARNING" not in checked.stderr and "Unable" not in checked.stderr, checked.stderr


@pytest.mark.system
def test_the_check_catches_a_missing_script_user(root_namespaces, tmp_path, monkeypatch):
    # The same check as above, on a machine where cloud-init did not create the user.
    monkeypatch.setattr(sys.modules[__name__], "script_user_binds", lambda tmp_path: {})
    config = feature_configs(FEATURES["health-check"])[0]
    with ProbeHost(next(root_namespaces), interface="ens3", address="192.168.0.11/24") as host:
        checked = keepalived_config_test(config, host, tmp_path)
    assert checked.returncode != 0
    assert "Unable to set default user" in checked.stderr


@pytest.mark.system
@pytest.mark.parametrize("feature", FEATURES)
def test_every_feature_passes_cloud_init_schema(feature, cloud_init_schema, tmp_path):
    path = tmp_path / "user-data.yaml"
    path.write_text(render_user_data(feature_configs(FEATURES[feature])[0]))
    checked = subprocess.run([cloud_init_schema, "schema", "-c", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_without_preemption_every_node_starts_backup_with_nopreempt():
    for config in feature_configs({"preempt": False, "nodes": THREE_NODES}):
        text = render_keepalived_conf(config)
        assert "state BACKUP" in text and "\n    nopreempt\n" in text
    assert "nopreempt" not in render_keepalived_conf(configs()[0])


def test_a_health_check_is_tracked_and_runs_unprivileged():
    config = feature_configs({"healthCheck": HEALTH})[0]
    text = render_keepalived_conf(config)
    assert f'script "{HEALTH_CHECK_PATH}"' in text
    assert "interval 1" in text and "fall 3" in text and "rise 2" in text
    assert "track_script {\n        chk_service\n    }" in text
    assert "enable_script_security" in text and f"script_user {SCRIPT_USER}" in text
    document = yaml.safe_load(render_user_data(config))
    files = {f["path"]: f for f in document["write_files"]}
    assert files[HEALTH_CHECK_PATH]["permissions"] == "0755"
    assert files[HEALTH_CHECK_PATH]["content"].rstrip().endswith(HEALTH["command"])
    assert document["users"][0] == "default", "the image's own user must stay"
    script_user = document["users"][1]
    assert script_user["name"] == SCRIPT_USER and script_user["system"] is True
    assert script_user["shell"] == "/usr/sbin/nologin"


def test_without_a_health_check_or_notify_command_no_script_user_is_made():
    config = configs()[0]
    text = render_keepalived_conf(config)
    assert "enable_script_security" in text, "the state-recording notify script runs on every node"
    assert "script_user" not in text
    assert "users" not in yaml.safe_load(render_user_data(config))


def test_every_node_records_its_vrrp_state_for_the_rollout(tmp_path):
    """With no notifyCommand too: the rollout reads the state to know a
    replaced node has joined the VRRP group."""
    state = tmp_path / "run" / "keepalived-vip" / "vrrp-state"
    config = configs()[0]
    assert f"notify {NOTIFY_SCRIPT_PATH} root" in render_keepalived_conf(config)
    script = tmp_path / "notify.sh"
    script.write_text(render_notify_script(None).replace(str(Path(VRRP_STATE_PATH).parent), str(state.parent)))
    # keepalived runs its scripts with umask 077; the state must still be readable by the login user.
    ran = subprocess.run(
        ["sh", "-c", f"umask 077; sh {script} INSTANCE VI_254 BACKUP 90"], capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    recorded, since = state.read_text().split()
    assert recorded == "BACKUP" and abs(float(since) - time.time()) < 5
    assert state.stat().st_mode & 0o777 == 0o644 and state.parent.stat().st_mode & 0o777 == 0o755


def test_the_notify_hook_gets_the_new_state_and_is_logged(tmp_path):
    command = 'echo "state=$1 env=$VRRP_STATE it\'s" >> ' + str(tmp_path / "out")
    script = tmp_path / "notify.sh"
    script.write_text(render_notify_script(command).replace(NOTIFY_LOG_PATH, str(tmp_path / "log")))
    ran = subprocess.run(["sh", str(script), "INSTANCE", "VI_254", "MASTER", "120"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out").read_text() == "state=MASTER env=MASTER it's\n"
    assert (tmp_path / "log").read_text().split()[1:] == ["MASTER", "0"]
    config = feature_configs({"notifyCommand": command})[0]
    assert f"notify {NOTIFY_SCRIPT_PATH} root" in render_keepalived_conf(config)


def test_gratuitous_arp_is_repeated_and_refreshed():
    text = render_keepalived_conf(configs()[0])
    for line in (
        "garp_master_delay 1",
        "garp_master_repeat 3",
        "garp_master_refresh 5",
        "garp_master_refresh_repeat 2",
        # After a partition heals: the other side's last advert makes the master announce the VIP.
        "garp_lower_prio_repeat 3",
        "garp_lower_prio_delay 1",
        "higher_prio_send_advert true",
    ):
        assert f"    {line}\n" in text


@pytest.mark.system
def test_keepalived_config_test_catches_a_missing_interface(root_namespaces, tmp_path):
    # Proves the check above can fail: the same config on a host whose NIC has another name.
    (tmp_path / "keepalived.conf").write_text(render_keepalived_conf(configs(interface="ens3")[0]))
    with ProbeHost(next(root_namespaces), interface="eth0", address="192.168.0.11/24") as host:
        checked = host.run(["keepalived", "-t", "-f", KEEPALIVED_CONF_PATH], binds={"/etc/keepalived": tmp_path})
    assert checked.returncode != 0


@pytest.mark.system
@pytest.mark.parametrize("mode,nodes,advert,interface", MATRIX, ids=MATRIX_IDS)
def test_every_user_data_passes_cloud_init_schema(mode, nodes, advert, interface, cloud_init_schema, tmp_path):
    for config in configs(mode, nodes, advert, interface):
        path = tmp_path / f"{config.router_id}.yaml"
        path.write_text(render_user_data(config))
        checked = subprocess.run([cloud_init_schema, "schema", "-c", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "Valid cloud-config" in checked.stdout


@pytest.mark.system
def test_cloud_init_schema_catches_a_broken_user_data(cloud_init_schema, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(render_user_data(configs()[0]).replace('permissions: "0600"', "permissions: 600"))
    checked = subprocess.run([cloud_init_schema, "schema", "-c", str(path)], capture_output=True, text=True)
    assert checked.returncode != 0


@pytest.mark.system
@pytest.mark.parametrize("nic", ["ens3", "eth7"])
def test_the_boot_time_detection_finds_the_default_route_interface(nic, root_namespaces, tmp_path):
    with ProbeHost(next(root_namespaces), interface=nic, address="192.168.0.11/24") as host:
        (tmp_path / "vrrp-interface.sh").write_text(vrrp_interface_script())
        ran = host.run(
            ["sh", VRRP_INTERFACE_SCRIPT_PATH, VRRP_INTERFACE_CONF_PATH], binds={"/etc/keepalived": tmp_path}
        )
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "vrrp-interface.conf").read_text() == f"$VRRP_INTERFACE={nic}\n"


@pytest.mark.system
def test_the_boot_time_detection_gives_up_without_a_default_route(root_namespaces, tmp_path):
    with ProbeHost(next(root_namespaces), address="192.168.0.11/24", gateway=None) as host:
        (tmp_path / "vrrp-interface.sh").write_text(vrrp_interface_script())
        ran = host.run(
            ["env", "VRRP_INTERFACE_WAIT_SECONDS=1", "sh", VRRP_INTERFACE_SCRIPT_PATH],
            binds={"/etc/keepalived": tmp_path},
        )
    assert ran.returncode != 0
    assert "no IPv4 default route" in ran.stderr
    assert not (tmp_path / "vrrp-interface.conf").exists()


def test_every_rendered_file_matches_its_golden_file_in_full():
    """After an intended change: `make golden`, then read the diff."""
    expected = golden_files.rendered()
    on_disk = {
        path.relative_to(golden_files.GOLDEN_DIR) for path in golden_files.GOLDEN_DIR.rglob("*") if path.is_file()
    }
    assert on_disk == set(expected), "stale or missing golden files: run `make golden`"
    for relative, text in expected.items():
        assert (golden_files.GOLDEN_DIR / relative).read_text() == text, f"{relative} differs: run `make golden`"


@pytest.mark.system
def test_the_golden_user_data_passes_cloud_init_schema(cloud_init_schema):
    for path in sorted(golden_files.GOLDEN_DIR.rglob("*.user-data.yaml")):
        checked = subprocess.run([cloud_init_schema, "schema", "-c", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, f"{path}: {checked.stdout}{checked.stderr}"


@pytest.mark.system
def test_every_shell_script_passes_shellcheck(shellcheck, tmp_path):
    """The scripts the nodes run, as rendered for every combination, and the
    interface detection as shipped."""
    scripts = [Path(vrrp_interface_script.__globals__["TEMPLATE_DIR"]) / "vrrp-interface.sh"]
    for path in sorted(golden_files.GOLDEN_DIR.rglob("*.user-data.yaml")):
        # The jumphost's user data writes no file.
        for written in yaml.safe_load(path.read_text()).get("write_files", []):
            if written["path"].endswith(".sh"):
                script = tmp_path / f"{path.parent.name}-{path.stem}-{Path(written['path']).name}"
                script.write_text(written["content"])
                scripts.append(script)
    checked = subprocess.run([shellcheck, "--shell=sh", *map(str, scripts)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(scripts) > len(golden_files.COMBINATIONS), "every combination's scripts were checked"


@pytest.mark.system
def test_the_repositorys_own_scripts_pass_shellcheck(shellcheck):
    scripts = [PROJECT_DIR / ".ci" / "run", *sorted((PROJECT_DIR / "engine").rglob("*.sh"))]
    checked = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
