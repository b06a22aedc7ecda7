"""Finding and removing what the cloud left on the machine: its processes
(each carries the cloud's directory in its environment or holds a file of
it open), what each service leaves outside the cloud's directory (the
namespaces of Neutron's routers and of Nova's instances, Open vSwitch's
devices), and its directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time

from vip_hosts.netns import list_namespaces

from .layout import MARKER, CloudDirs
from .services import SERVICES, neutron, nova


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _refers_to(pid: str, mark: bytes, root: str) -> bool:
    """Whether a process carries the cloud's marker in its environment, or
    has a file of the cloud's directory open (every daemon's output is a log
    there, and its children inherit it) or as its working directory.
    Daemons that retitle themselves (setproctitle) overwrite their
    environment, so the marker alone misses them."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            if mark in environ.read().split(b"\0"):
                return True
        paths = [os.readlink(f"/proc/{pid}/cwd")]
        paths += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(path == root or path.startswith(root + "/") for path in paths)


def cloud_processes(dirs: CloudDirs) -> list[int]:
    """Every live process started for this cloud but this one and its parents."""
    mark = f"{MARKER}={dirs.root}".encode()
    mine = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if _refers_to(entry, mark, str(dirs.root)):
            found.append(int(entry))
    return found


def cloud_namespaces() -> list[str]:
    prefixes = (*neutron.NAMESPACE_PREFIXES, *nova.NAMESPACE_PREFIXES)
    return [name for name in list_namespaces() if name.startswith(prefixes)]


def kill_processes(dirs: CloudDirs, timeout: float = 15) -> list[int]:
    pids = cloud_processes(dirs)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in cloud_processes(dirs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while cloud_processes(dirs) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not cloud_processes(dirs):
            break
    return pids


def remove_leftovers(dirs: CloudDirs) -> dict[str, list]:
    """Every process of the cloud, and what each service leaves outside its
    directory (the last started first)."""
    processes = kill_processes(dirs)
    outside = [left for service in reversed(SERVICES) for left in service.cleanup(dirs)]
    return {"processes": processes, "outside": outside}


def remove_everything(dirs: CloudDirs) -> dict[str, list]:
    """What `make cloud-down` does after the supervisor has stopped: whatever
    is still there goes, even after a crash that left no supervisor."""
    removed = remove_leftovers(dirs)
    existed = dirs.root.exists()
    # Mounts the lab hosts made live in their own mount namespaces, gone
    # with their processes; nothing is mounted under the directory itself.
    shutil.rmtree(dirs.root, ignore_errors=True)
    return {**removed, "directory": [str(dirs.root)] if existed else []}
