"""The lab's drills on real keepalived and cloud-init, in namespaces.

Bounds come from VRRP's timers: a backup takes over within the master down
interval (3 x advert_int + skew); a stopped master (priority 0) is replaced
within the skew alone, which the master down interval bounds too.
"""

import json
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vip_hosts.boot import (
    BootFailed,
    KeepalivedService,
    expand_command,
    parse_environment_file,
    parse_unit,
    write_by_hand,
)
from vip_hosts.netns import delete_namespace, list_namespaces
from vip_lab import drills as drills_module
from vip_lab.drills import HANDOVER_GAP_BOUND_S
from vip_lab.faults import Stress
from vip_lab.report import format_table, label_lanes, plot_timeline
from vip_lab.results import (
    CascadeResult,
    ConvergenceResult,
    HealthCheckResult,
    LabReport,
    NotifyResult,
    PingFigures,
    RestartResult,
    RolloutResult,
    SteadyResult,
    StressResult,
    TakeoverResult,
    Timeline,
    VrrpFigures,
)
from vip_lab.runner import run_drills
from vip_lab.scenario import reference_spec, rollout_spec, stack_spec
from vip_lab.topology import Lab, leftovers, new_run_prefix

from .change_classes import CHANGE_CLASSES, THREE_NODES
from .harness import EXAMPLE_CONFIG, PROJECT_DIR

# The measure of a rolling update: what a client pinging every 10 ms notices.
ROLLOUT_PING_INTERVAL = 0.01


@pytest.fixture
def lab_ready(root_namespaces):
    """Root and the tools, and the prefix of the test's lab: afterwards none
    of its namespaces, and none of the processes it started, may be left
    (whatever else runs on the machine, keepalived included)."""
    prefix = new_run_prefix()
    yield prefix
    assert leftovers(prefix) == {"namespaces": [], "processes": []}, "the lab left something behind"


def test_the_master_down_interval_follows_the_rfc():
    spec = stack_spec(EXAMPLE_CONFIG)
    assert spec.master_down_interval(90) == pytest.approx(3 + (256 - 90) / 256)
    fast = stack_spec({**EXAMPLE_CONFIG, "advertInterval": "0.2"})
    assert fast.vrrp_version == 3
    assert fast.master_down_interval(90) == pytest.approx(3 * 0.2 + (256 - 90) * 0.2 / 256)


def test_the_lab_takes_each_nodes_user_data_as_the_program_declares_it():
    spec = stack_spec(EXAMPLE_CONFIG)
    assert [n.name for n in spec.by_priority()] == ["kld-vm-1", "kld-vm-2"]
    for node in spec.nodes:
        assert node.user_data is not None and node.user_data.startswith("#cloud-config")
        assert f"unicast_src_ip {node.address}" in node.user_data
    assert spec.jumphost_address not in {n.address for n in spec.nodes}
    assert spec.gateway == "192.168.0.1" and spec.nic == "ens3"


def test_the_unit_is_read_as_systemd_reads_it():
    unit = parse_unit(
        [
            "[Service]\nEnvironmentFile=-/etc/default/keepalived\n"
            "ExecStart=/usr/sbin/keepalived --dont-fork $DAEMON_ARGS\n"
            "ConditionFileNotEmpty=/etc/keepalived/keepalived.conf\n",
            "[Service]\nExecStartPre=/bin/sh /etc/keepalived/vrrp-interface.sh /etc/keepalived/vrrp-interface.conf\n",
        ]
    )
    assert unit.exec_start_pre == ["/bin/sh /etc/keepalived/vrrp-interface.sh /etc/keepalived/vrrp-interface.conf"]
    assert unit.environment_files == ["-/etc/default/keepalived"]
    environment = parse_environment_file('# comment\nDAEMON_ARGS="-D --vrrp"\n')
    assert unit.exec_start is not None
    assert expand_command(unit.exec_start, environment) == ["/usr/sbin/keepalived", "--dont-fork", "-D", "--vrrp"]
    assert expand_command(unit.exec_start, {}) == ["/usr/sbin/keepalived", "--dont-fork"]


def one_node_lab(lab: Lab):
    return lab.build(
        gateway_cidr="192.168.0.1/24",
        prefix_length=24,
        gateway="192.168.0.1",
        nodes=[("kld-vm-1", "192.168.0.11")],
        jumphost=("kld-jumphost-vm", "192.168.0.5"),
        nic="ens3",
    )


@pytest.mark.system
def test_a_rebooted_node_keeps_its_disk_and_nothing_else(lab_ready):
    with Lab(prefix=lab_ready) as lab:
        topology = one_node_lab(lab)
        host = topology.nodes["kld-vm-1"]
        host.run(["sh", "-c", "echo 1 > /run/keepalived.pid && echo kept > /etc/on-disk"])
        host.run(["ip", "addr", "add", "192.168.0.254/24", "dev", "ens3"])
        sleeper = lab.track(host.popen(["sleep", "600"], "sleep.log"))

        host.reboot()

        assert sleeper.wait(timeout=5) == -signal.SIGKILL, "a reboot ends every process"
        assert host.run(["ls", "-A", "/run"]).stdout == "", "/run starts empty, as a tmpfs does"
        assert host.read_file("/etc/on-disk") == "kept\n"
        nic = host.run(["ip", "-o", "-4", "addr", "show", "dev", "ens3"]).stdout
        assert "192.168.0.11/24" in nic and "192.168.0.254" not in nic, "no stale VIP after a reboot"
        assert host.run(["hostname"]).stdout.strip() == "kld-vm-1"
        topology.jumphost.run(["ping", "-c", "1", "-W", "2", "192.168.0.11"])


@pytest.mark.system
def test_a_replaced_node_is_a_new_host_on_the_same_port(lab_ready):
    with Lab(prefix=lab_ready) as lab:
        topology = one_node_lab(lab)
        old = topology.nodes["kld-vm-1"]
        old.run(["sh", "-c", "echo old > /etc/on-disk"])
        mac = old.mac()

        new = lab.replace(topology, "kld-vm-1")

        assert topology.nodes["kld-vm-1"] is new and new is not old
        assert new.read_file("/etc/on-disk") is None, "nothing of the old instance"
        assert new.mac() == mac, "the Neutron port, and so its MAC, outlives the instance"
        topology.jumphost.run(["ping", "-c", "1", "-W", "2", "192.168.0.11"])


@pytest.mark.system
def test_keepalived_that_will_not_start_says_why_and_a_reboot_clears_stale_pid_files(lab_ready):
    """What made CI flaky: after a crash, keepalived found its old pid file
    naming a live process and exited 0 with "daemon is already running"."""
    with Lab(prefix=lab_ready) as lab:
        topology = one_node_lab(lab)
        host = topology.nodes["kld-vm-1"]
        write_by_hand(host, reference_spec("kld-pass").node("kld-vm-1").files)
        squatter = lab.track(host.popen(["sleep", "600"], "squatter.log"))
        host.run(["sh", "-c", f"echo {squatter.pid} > /run/keepalived.pid"])
        service = KeepalivedService(host)

        with pytest.raises(BootFailed, match="daemon is already running"):
            service.start(lab.track)

        host.reboot()
        service.start(lab.track)
        assert service.running
        service.stop()


def assert_rolled_out_one_at_a_time(rollout: RolloutResult):
    assert rollout.order == ["kld-vm-2", "kld-vm-1"], "lowest priority first, the master last"
    assert [step.node for step in rollout.steps] == rollout.order
    assert all(any("keepalived stopped" in note for note in step.drain) for step in rollout.steps), (
        "each node drained first"
    )
    assert rollout.holders == ["kld-vm-1"]
    assert_handed_over(rollout)


def assert_handed_over(rollout: RolloutResult):
    """The clients do not notice: the next holder took the VIP before the old one stopped."""
    assert rollout.handover and rollout.pings is not None and rollout.pings.received > 0
    assert rollout.pings.longest_gap_s <= HANDOVER_GAP_BOUND_S, rollout.summary


@pytest.mark.system
def test_a_stopped_master_hands_over_the_vip_and_takes_it_back(lab_ready):
    spec = stack_spec(EXAMPLE_CONFIG)
    # A change old and new nodes agree on: the VRRP group stays one throughout.
    new_priorities = [{"name": "kld-vm-1", "priority": 150}, {"name": "kld-vm-2", "priority": 90}]
    report = run_drills(
        spec,
        drills=["graceful", "restart", "crash", "rollout"],
        prefix=lab_ready,
        rollout_to=rollout_spec(EXAMPLE_CONFIG, {"nodes": new_priorities}, spec),
        ping_interval=ROLLOUT_PING_INTERVAL,
    )
    print(format_table(report))
    # First, so that a failed drill says what it saw and what it expected.
    assert report.passed, format_table(report)

    converged = report.drill("convergence", ConvergenceResult)
    assert converged.expected_holder == "kld-vm-1"
    assert converged.convergence_s is not None
    assert converged.convergence_s <= spec.master_down_interval(90) + spec.advert_interval

    graceful = report.drill("graceful failover", TakeoverResult)
    assert (graceful.victim, graceful.successor) == ("kld-vm-1", "kld-vm-2")
    assert graceful.failover_s is not None and graceful.failover_s <= spec.master_down_interval(90)
    # The ping goes on: it came back after the takeover, with a gap no longer than the takeover allowed.
    assert graceful.pings is not None and graceful.pings.received > 0
    assert graceful.pings.longest_gap_s <= spec.master_down_interval(90) + spec.advert_interval

    restart = report.drill("master restart", RestartResult)
    assert restart.expected_holder == "kld-vm-1"
    assert restart.takeback_s is not None
    assert restart.takeback_s <= spec.master_down_interval(120) + spec.advert_interval

    crash = report.drill("crash failover", TakeoverResult)
    assert (crash.victim, crash.successor) == ("kld-vm-1", "kld-vm-2")
    assert crash.failover_s is not None and crash.failover_s <= spec.master_down_interval(90) + spec.advert_interval
    assert crash.pings is not None and crash.pings.received > 0

    rollout = report.drill("rollout", RolloutResult)
    assert_rolled_out_one_at_a_time(rollout)
    # Nodes that agree share one VRRP group: two holders at most for the moment
    # between the new master starting as MASTER and the backup hearing it.
    assert rollout.both_claimed_s is not None and rollout.both_claimed_s < spec.advert_interval

    assert report.ping.received > 0


@pytest.mark.system
def test_multicast_with_three_nodes_the_next_priority_wins(lab_ready):
    spec = stack_spec({**EXAMPLE_CONFIG, "vrrpMode": "multicast", "nodes": THREE_NODES})
    assert spec.mode == "multicast"
    report = run_drills(spec, drills=["crash", "cascade"], prefix=lab_ready)
    print(format_table(report))
    assert report.passed, format_table(report)
    assert report.drill("convergence", ConvergenceResult).expected_holder == "kld-vm-1"
    crash = report.drill("crash failover", TakeoverResult)
    assert crash.successor == "kld-vm-2", "the second priority, not the third, takes over"
    assert crash.failover_s is not None and crash.failover_s <= spec.master_down_interval(90) + spec.advert_interval
    assert report.drill("next priority wins", CascadeResult).order == ["kld-vm-1", "kld-vm-2", "kld-vm-3"]


@pytest.mark.system
def test_the_reference_procedures_own_configs_run_in_the_lab(lab_ready):
    spec = reference_spec("kld-pass")
    report = run_drills(spec, drills=["graceful"], prefix=lab_ready)
    assert report.passed, format_table(report)
    assert report.drill("graceful failover", TakeoverResult).successor == "kld-vm-2"


@pytest.mark.system
def test_nothing_is_left_behind_after_a_failing_drill(lab_ready, monkeypatch):
    def broken_drill(run):
        assert run.services["kld-vm-1"].running
        raise RuntimeError("a drill broke half-way")

    monkeypatch.setitem(drills_module.DRILLS, "graceful", broken_drill)
    prefix = lab_ready
    with pytest.raises(RuntimeError, match="half-way"):
        run_drills(stack_spec(EXAMPLE_CONFIG), drills=["graceful"], prefix=prefix)
    assert leftovers(prefix) == {"namespaces": [], "processes": []}
    assert not list(Path(tempfile.gettempdir()).glob(f"{prefix}-*")), "the lab's directory is gone too"
    assert not [
        n
        for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        if n.startswith(prefix)
    ]


FAST = {
    **EXAMPLE_CONFIG,
    "advertInterval": "0.2",
    "healthCheck": {"command": "curl -fsS http://127.0.0.1:8080/healthz", "interval": 1, "fall": 2, "rise": 2},
    "notifyCommand": 'echo "$1" >> /var/log/vip-state',
}


@pytest.mark.system
def test_sub_second_adverts_fail_over_fast_track_health_and_notify(lab_ready):
    spec = stack_spec(FAST)
    assert spec.vrrp_version == 3 and spec.notify
    assert spec.health_check is not None
    assert (spec.health_check.interval, spec.health_check.fall, spec.health_check.rise) == (1, 2, 2)
    # A change old and new nodes cannot agree on: they do not hear each other
    # until the last old node is gone.
    report = run_drills(
        spec,
        drills=["graceful", "crash", "health", "steady", "stress", "rollout", "notify"],
        prefix=lab_ready,
        steady_seconds=5,
        rollout_to=rollout_spec(FAST, {"virtualRouterId": 17}, spec),
        ping_interval=ROLLOUT_PING_INTERVAL,
        # Stalls of the holder, 150 ms each, with 5% of packets lost (adverts
        # never two in a row): the longest silence, 0.15 + 2 x 0.2 = 0.55 s,
        # stays under the master down interval (0.73 s) with the scheduler's
        # 0.1 s allowance, so no move is certain, not lucky.
        stress=Stress(seconds=7, loss_percent=5, stall_ms=150, stall_every=2),
    )
    print(format_table(report))
    assert report.passed, format_table(report)
    # VRRP v3 timers at 0.2 s: the whole takeover fits in one master down interval.
    graceful = report.drill("graceful failover", TakeoverResult)
    assert graceful.failover_s is not None and graceful.failover_s <= spec.master_down_interval(90)
    crash = report.drill("crash failover", TakeoverResult)
    assert crash.failover_s is not None and crash.failover_s <= spec.master_down_interval(90) + spec.advert_interval
    health = report.drill("health check", HealthCheckResult)
    assert (health.sick, health.successor) == ("kld-vm-1", "kld-vm-2")
    assert health.failover_s is not None and health.failover_s <= (2 + 1) * 1 + spec.master_down_interval(90)
    assert health.recovery_s is not None, "the node whose service came back takes the VIP again"
    assert report.drill("steady under load", SteadyResult).transitions == 0
    stress = report.drill("stress", StressResult)
    assert stress.promised_no_move and stress.stalls >= 2 and stress.transitions == 0, stress.summary
    assert_rolled_out_one_at_a_time(report.drill("rollout", RolloutResult))
    hook = report.drill("notify hook", NotifyResult).nodes["kld-vm-1"]
    assert hook.master_runs == hook.vip_gains >= 1


# Every change class of a rolling update but the two the tests above roll out
# (new priorities; another virtualRouterId, at 0.2 s adverts).
HANDED_OVER_CLASSES = [name for name in CHANGE_CLASSES if name not in ("compatible", "router id")]


@pytest.mark.system
@pytest.mark.parametrize("class_name", HANDED_OVER_CLASSES)
def test_a_rolling_update_hands_the_vip_over_before_the_holder_stops(class_name, lab_ready):
    change_class = CHANGE_CLASSES[class_name]
    out_of_reach = change_class.successor_unreachable
    config = change_class.stack_before(EXAMPLE_CONFIG)
    spec = stack_spec(config)
    target = rollout_spec(config, change_class.change(config), spec)
    report = run_drills(
        spec,
        drills=["rollout"],
        prefix=lab_ready,
        rollout_to=target,
        ping_interval=ROLLOUT_PING_INTERVAL,
        successor_unreachable=out_of_reach,
    )
    print(format_table(report))
    assert report.passed, format_table(report)
    rollout = report.drill("rollout", RolloutResult)
    assert [step.node for step in rollout.steps] == list(target.rollout_order)
    assert rollout.holders == ["kld-vm-1"] if target.preempt else len(rollout.holders) == 1
    assert_handed_over(rollout)
    drained = [note for step in rollout.steps for note in step.drain]
    # The holder that cannot raise its successor lowers itself instead.
    assert any("lowered below its backups" in note for note in drained) == out_of_reach, drained


@pytest.mark.system
def test_without_preemption_a_returning_master_does_not_take_the_vip_back(lab_ready):
    spec = stack_spec({**EXAMPLE_CONFIG, "preempt": False})
    assert not spec.preempt
    report = run_drills(spec, drills=["graceful", "restart"], prefix=lab_ready)
    print(format_table(report))
    assert report.passed, format_table(report)
    # Every node starts BACKUP; the election still picks the highest priority.
    assert report.drill("convergence", ConvergenceResult).expected_holder == "kld-vm-1"
    restart = report.drill("master restart", RestartResult)
    assert (restart.restarted, restart.expected_holder) == ("kld-vm-1", "kld-vm-2")
    assert restart.pings is not None and restart.pings.longest_gap_s < spec.advert_interval, "no second interruption"


@pytest.mark.system
def test_ctrl_c_removes_everything(lab_ready):
    """The lab as a user runs it, interrupted half-way."""
    before = set(list_namespaces())
    lab = subprocess.Popen(
        [sys.executable, "-m", "vip_lab", "--drills", "graceful,steady", "--steady-seconds", "60"],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert lab.stderr is not None
    prefix = None
    try:
        for line in lab.stderr:
            found = re.search(r"\(namespaces (vl[0-9a-f]+)-\*\)", line)
            prefix = found.group(1) if found else prefix
            if "steady:" in line:  # keepalived runs on every node, the jumphost pings, cores are busy
                break
        lab.send_signal(signal.SIGINT)
        _, rest = lab.communicate(timeout=60)
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait()
            # The lab got no chance to clean up: do it, so that only this test fails.
            for namespace in set(list_namespaces()) - before:
                if namespace.startswith("vl"):
                    delete_namespace(namespace)
    assert lab.returncode == 130
    assert "removed" in rest
    assert prefix is not None, "the lab names its namespaces"
    assert leftovers(prefix) == {"namespaces": [], "processes": []}, "no keepalived, sshd or service of the lab"
    # Only the lab's own names (vl...): a local cloud running beside the test
    # may make namespaces of its own meanwhile.
    left = {n for n in set(list_namespaces()) - before if n.startswith("vl")}
    assert not left, f"left behind: {left}"
    busy = subprocess.run(["pgrep", "-f", "while time.monotonic"], capture_output=True, text=True).stdout.split()
    assert not busy, "a CPU burner of the steady drill outlived the lab"


def test_timeline_labels_of_events_close_in_time_stack_instead_of_overlapping():
    events = [(10.0, "drain kld-vm-2"), (10.1, "replace kld-vm-2"), (10.2, "start kld-vm-2"), (60.0, "heal")]
    lanes = label_lanes(events, seconds_per_char=0.5)
    assert lanes[:3] == [0, 1, 2], "each label of the burst gets its own line"
    assert lanes[3] == 0, "a label far from the others goes back to the first line"


def a_report_with_a_failed_crash_drill() -> LabReport:
    converged = ConvergenceResult(
        name="convergence",
        passed=True,
        summary="kld-vm-1 holds the VIP alone after 3.10 s",
        expected="kld-vm-1 alone holds the VIP within 4.65 s and keeps it",
        bound_s=4.648,
        expected_holder="kld-vm-1",
        convergence_s=3.1,
    )
    crashed = TakeoverResult(
        name="crash failover",
        passed=False,
        summary="holders ['kld-vm-1'] after 8.6 s",
        expected="kld-vm-2 holds the VIP within 4.65 s of kld-vm-1 crashed, and pings resume",
        bound_s=4.648,
        pings=PingFigures(sent=430, received=2, longest_gap_s=8.6),
        victim="kld-vm-1",
        successor="kld-vm-2",
    )
    return LabReport(
        label="Pulumi.dev.yaml",
        vrrp=VrrpFigures(mode="unicast", version=2, advert_int_s=1, nodes={"kld-vm-1": 120, "kld-vm-2": 90}),
        drills={result.name: result for result in (converged, crashed)},
        ping=PingFigures(sent=600, received=170, longest_gap_s=8.6),
        notes=[],
        timeline=Timeline(
            changes=[(3.1, "kld-vm-1", True)],
            replies=[3.2, 3.22, 12.0],
            events=[(3.4, "crash kld-vm-1")],
            nodes=["kld-vm-1", "kld-vm-2"],
        ),
    )


def test_a_failed_drill_says_which_drill_what_it_saw_and_what_it_expected():
    report = a_report_with_a_failed_crash_drill()
    assert not report.passed
    table = format_table(report)
    assert (
        "FAIL crash failover: saw holders ['kld-vm-1'] after 8.6 s; "
        "expected kld-vm-2 holds the VIP within 4.65 s of kld-vm-1 crashed" in table
    )
    assert "FAIL convergence" not in table and table.endswith("SOME DRILLS FAILED")
    crash_row = next(line for line in table.splitlines() if line.startswith("crash failover"))
    assert crash_row.split() == ["crash", "failover", "FAIL", "4.65", "8.60", "2/430"]
    with pytest.raises(TypeError, match="crash failover has no RestartResult: FAIL crash failover: saw holders"):
        report.drill("crash failover", RestartResult)


def test_the_lab_json_holds_every_figure_and_the_verdicts_but_not_the_timeline():
    data = json.loads(json.dumps(a_report_with_a_failed_crash_drill().as_json()))
    assert data["passed"] is False and "timeline" not in data
    assert data["vrrp"] == {
        "mode": "unicast",
        "version": 2,
        "advert_int_s": 1,
        "nodes": {"kld-vm-1": 120, "kld-vm-2": 90},
    }
    crash = data["drills"]["crash failover"]
    assert (crash["passed"], crash["victim"], crash["successor"], crash["failover_s"]) == (
        False,
        "kld-vm-1",
        "kld-vm-2",
        None,
    )
    assert crash["expected"].startswith("kld-vm-2 holds the VIP") and crash["pings"]["longest_gap_s"] == 8.6
    assert data["drills"]["convergence"]["convergence_s"] == 3.1
    assert data["ping"] == {"sent": 600, "received": 170, "longest_gap_s": 8.6}


def test_the_timeline_plots_a_report(tmp_path):
    path = tmp_path / "timeline.png"
    plot_timeline([a_report_with_a_failed_crash_drill()], str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
