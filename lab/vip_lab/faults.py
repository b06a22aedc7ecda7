"""The faults a bad day brings, for the drills: busy cores, packet loss, and
the stress drill's settings (stalls of the VIP's holder come with it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .netns import run as run_command

if TYPE_CHECKING:
    from .cluster import LabRun


@dataclass(frozen=True)
class Stress:
    """The stress drill's bad day."""

    seconds: float = 60
    loss_percent: float = 1
    stall_ms: int = 250
    # A stall every this many seconds.
    stall_every: float = 3


@contextlib.contextmanager
def busy_cores(run: LabRun, seconds: float) -> Iterator[int]:
    """Every core kept busy while the block runs; yields how many."""
    cores = os.cpu_count() or 1
    # Each burner stops by itself after the drill even if nobody kills it.
    burn = f"import time\nend = time.monotonic() + {seconds + 5}\nwhile time.monotonic() < end: pass\n"
    burners: list[subprocess.Popen] = []
    try:
        for _ in range(cores):
            # Inside the lab's switch namespace, so that removing the lab's
            # namespaces kills a burner even if Ctrl-C lands before it is
            # tracked; and with no inherited output, so it never holds the
            # lab's pipes open.
            burners.append(
                run.lab.track(
                    subprocess.Popen(
                        ["ip", "netns", "exec", run.topology.switch.namespace, sys.executable, "-c", burn],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            )
        yield cores
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


@contextlib.contextmanager
def packet_loss(run: LabRun, percent: float) -> Iterator[None]:
    """Drops `percent` of every node's incoming packets (nftables: this
    kernel has no netem), VRRP adverts included."""
    table = "vlstress"
    rules = (
        f"add table inet {table}\n"
        f"add chain inet {table} input {{ type filter hook input priority 0 ; }}\n"
        f"add rule inet {table} input numgen random mod 1000 < {round(percent * 10)} drop\n"
    )
    namespaces = [host.namespace for host in run.topology.nodes.values()] if percent > 0 else []
    try:
        for namespace in namespaces:
            run_command(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules)
        yield
    finally:
        for namespace in namespaces:
            run_command(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", table], check=False)
