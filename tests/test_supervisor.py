"""The supervisor that stands in for systemd on this machine: a service
stopped by hand stays stopped until it is started again, and that is not a
crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vip_hosts.supervisor import Service, ServiceFailed, Supervisor


def sleeper(tmp_path: Path, name: str = "sleeper") -> Service:
    return Service(
        name=name,
        argv=[sys.executable, "-c", "import time; time.sleep(600)"],
        env={},
        log=tmp_path / f"{name}.log",
        ready=lambda: True,
    )


def test_a_held_service_is_stopped_and_not_started_again_until_released(tmp_path):
    control = tmp_path / "services"
    supervisor = Supervisor(control=control)
    service = sleeper(tmp_path)
    try:
        supervisor.start(service)
        first = int((control / "sleeper.pid").read_text())
        assert service.process is not None and first == service.process.pid

        (control / "sleeper.held").touch()
        supervisor.watch_once()
        assert not service.running and not (control / "sleeper.pid").exists()
        supervisor.watch_once()
        assert not service.running, "a held service is not started again"

        (control / "sleeper.held").unlink()
        supervisor.watch_once()
        assert service.running and int((control / "sleeper.pid").read_text()) != first
        assert service.restarts == [], "a stop by hand is not a crash"
    finally:
        supervisor.stop_all(timeout=5)


def test_a_crashed_service_is_started_again_and_counted(tmp_path):
    supervisor = Supervisor(control=tmp_path / "services")
    service = sleeper(tmp_path)
    try:
        supervisor.start(service)
        assert service.process is not None
        service.process.kill()
        service.process.wait()
        supervisor.watch_once()
        assert service.running and len(service.restarts) == 1
    finally:
        supervisor.stop_all(timeout=5)


def test_services_started_together_are_each_waited_for_and_one_that_dies_is_named(tmp_path):
    supervisor = Supervisor(control=tmp_path / "services")
    readiness = {"late": 0}

    def late_ready() -> bool:
        readiness["late"] += 1
        return readiness["late"] >= 3

    late = sleeper(tmp_path, "late")
    late.ready = late_ready
    dying = Service(
        name="dying",
        argv=[sys.executable, "-c", "raise SystemExit(3)"],
        env={},
        log=tmp_path / "dying.log",
        ready=lambda: False,
    )
    try:
        took = supervisor.start_together([sleeper(tmp_path, "early"), late])
        assert set(took) == {"early", "late"} and readiness["late"] == 3
        assert all((tmp_path / "services" / f"{name}.pid").exists() for name in took)

        with pytest.raises(ServiceFailed, match="dying.*exited 3"):
            supervisor.start_together([sleeper(tmp_path, "another"), dying])
    finally:
        supervisor.stop_all(timeout=5)
