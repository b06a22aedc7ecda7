"""The faults a bad day brings, for the drills: busy cores, packet loss, and
the stress drill's settings (stalls of the VIP's holder come with it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vip_hosts.netns import run as run_command

if TYPE_CHECKING:
    from .cluster import Cluster


# What the scheduler may add to a silence on a machine whose cores are all
# busy (keepalived is an ordinary process): the margin a promise keeps.
SCHEDULING_ALLOWANCE_S = 0.1


@dataclass(frozen=True)
class Stress:
    """The stress drill's bad day."""

    seconds: float = 60
    loss_percent: float = 1
    stall_ms: int = 250
    # A stall every this many seconds.
    stall_every: float = 3
    # How VRRP adverts are lost. "spaced": loss_percent of them, never two in
    # a row (one in every 100/loss_percent): the loss VRRP's three-advert
    # timer is designed to ride out, and a bound the drill can promise on.
    # "random": each one with that chance, so a run of them can be lost and
    # nothing is certain; the speed/robustness sweep counts how often.
    # Every other packet is lost at random either way.
    advert_loss: Literal["spaced", "random"] = "spaced"

    def longest_silence_s(self, advert_interval: float) -> float | None:
        """The longest a backup can go without an advert from a holder that
        keeps running: a stall that begins just before an advert is due, and
        the advert sent at its end lost. None: no bound (random loss)."""
        if self.loss_percent > 0 and self.advert_loss == "random":
            return None
        lost_in_a_row = 1 if self.loss_percent > 0 else 0
        return self.stall_ms / 1000 + (1 + lost_in_a_row) * advert_interval

    def keeps_holder(self, advert_interval: float, master_down_interval: float) -> bool:
        """Whether no backup can take over: the longest silence, with the
        scheduler's allowance, stays under its master down interval."""
        silence = self.longest_silence_s(advert_interval)
        return silence is not None and silence + SCHEDULING_ALLOWANCE_S < master_down_interval


@contextlib.contextmanager
def busy_cores(run: Cluster, seconds: float) -> Iterator[int]:
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
def packet_loss(run: Cluster, percent: float, advert_loss: str = "spaced") -> Iterator[None]:
    """Drops `percent` of every node's incoming packets (nftables: this
    kernel has no netem), VRRP adverts included: spaced (one in every
    100/percent, counted per node) or at random, as Stress.advert_loss says."""
    table = "vlstress"
    adverts = (
        f"ip protocol vrrp numgen inc mod {max(1, round(100 / percent))} 0 drop"
        if advert_loss == "spaced" and percent > 0
        else f"ip protocol vrrp numgen random mod 1000 < {round(percent * 10)} drop"
    )
    rules = (
        f"add table inet {table}\n"
        f"add chain inet {table} input {{ type filter hook input priority 0 ; }}\n"
        f"add rule inet {table} input {adverts}\n"
        f"add rule inet {table} input ip protocol != vrrp numgen random mod 1000 < {round(percent * 10)} drop\n"
    )
    namespaces = [host.namespace for host in run.topology.nodes.values()] if percent > 0 else []
    try:
        for namespace in namespaces:
            run_command(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules)
        yield
    finally:
        for namespace in namespaces:
            run_command(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", table], check=False)
