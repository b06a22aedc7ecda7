"""The cloud's status, as its supervisor records it in its directory: one
JSON event a line (a step begun, ready with its timings, or failed), and the
supervisor's pid. make cloud follows it; the tests and the benchmark read it."""

from __future__ import annotations

import json
import os

from .layout import CloudDirs


def supervisor_pid(dirs: CloudDirs) -> int | None:
    try:
        pid = int(dirs.supervisor_pid.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def read_status(dirs: CloudDirs) -> list[dict]:
    try:
        return [json.loads(line) for line in dirs.status.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        return []


def is_ready(dirs: CloudDirs) -> bool:
    events = read_status(dirs)
    return supervisor_pid(dirs) is not None and bool(events) and "ready" in events[-1]


def record(dirs: CloudDirs, event: dict) -> None:
    with open(dirs.status, "a") as out:
        out.write(json.dumps(event) + "\n")
