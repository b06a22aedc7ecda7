"""What the lab watches while the drills run: which node holds the VIP, and
whether the jumphost's pings to the VIP come back. Both keep timestamps on
one clock (time.monotonic) so a drill can line them up."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from .hosts import JumpHost, NodeHost


@dataclass
class HolderChange:
    at: float
    node: str
    holds: bool


class VipWatcher:
    """Follows the VIP on every node's NIC through `ip monitor address`
    (events, not polling: the watcher costs nothing between changes)."""

    def __init__(self, nodes: Sequence[NodeHost], vip: str, track: Callable):
        self.vip = vip
        self.nodes = list(nodes)
        self.changes: list[HolderChange] = []
        self.holding: dict[str, bool] = {node.name: False for node in self.nodes}
        self._lock = threading.Condition()
        self._pattern = re.compile(rf"\binet {re.escape(vip)}/")
        self._threads = []
        for node in self.nodes:
            monitor = track(subprocess.Popen(
                ["ip", "-n", node.namespace, "-o", "monitor", "address"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
            ))
            thread = threading.Thread(target=self._follow, args=(node, monitor), daemon=True)
            thread.start()
            self._threads.append(thread)
        # The monitors are subscribed; now read where the VIP is, once.
        time.sleep(0.05)
        for node in self.nodes:
            out = subprocess.run(["ip", "-n", node.namespace, "-o", "-4", "addr", "show", "dev", node.nic],
                                 capture_output=True, text=True).stdout
            self._record(node.name, bool(self._pattern.search(out)))

    def _follow(self, node: NodeHost, monitor: subprocess.Popen) -> None:
        for line in monitor.stdout:
            if self._pattern.search(line):
                self._record(node.name, not line.startswith("Deleted"))

    def _record(self, node: str, holds: bool) -> None:
        with self._lock:
            if self.holding[node] != holds:
                self.holding[node] = holds
                self.changes.append(HolderChange(time.monotonic(), node, holds))
                self._lock.notify_all()

    def holders(self) -> list[str]:
        with self._lock:
            return [name for name, holds in self.holding.items() if holds]

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float) -> Optional[float]:
        """Waits until condition(holders) is true; returns when it became true, or None."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                holders = [name for name, holds in self.holding.items() if holds]
                if condition(holders):
                    return self.changes[-1].at if self.changes else time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(remaining)

    def stable_for(self, seconds: float) -> bool:
        """True if nothing changed during the last `seconds` (waits that long)."""
        start = time.monotonic()
        time.sleep(seconds)
        with self._lock:
            return not any(change.at >= start for change in self.changes)

    def changes_between(self, start: float, end: float) -> list[HolderChange]:
        with self._lock:
            return [c for c in self.changes if start <= c.at <= end]


@dataclass
class PingStats:
    sent: int
    received: int
    longest_gap: float  # seconds between two consecutive replies

    @property
    def lost(self) -> int:
        return self.sent - self.received


@dataclass
class Pinger:
    """`ping` from the jumphost to the VIP, the reference procedure's check,
    with every reply timestamped as it arrives."""

    jumphost: JumpHost
    vip: str
    track: Callable
    interval: float = 0.02
    # Bounds the run: ping stops by itself even if the lab is killed.
    deadline_seconds: int = 1800
    replies: list[float] = field(default_factory=list)
    # (when, highest icmp_seq seen by then): how many requests had gone out.
    sequence: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> None:
        self._process = self.track(subprocess.Popen(
            # ping block-buffers its output into a pipe; stdbuf makes each reply a line as it comes.
            self.jumphost.command(["stdbuf", "-oL", "ping", "-n", "-O", "-i", str(self.interval), "-W", "1",
                                   "-w", str(self.deadline_seconds), self.vip]),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        ))
        self._lock = threading.Lock()
        self._max_seq = 0
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        reply = re.compile(r"icmp_seq=(\d+) ttl=")
        no_answer = re.compile(r"no answer yet for icmp_seq=(\d+)")
        for line in self._process.stdout:
            now = time.monotonic()
            answered = reply.search(line)
            unanswered = answered or no_answer.search(line)
            if not unanswered:
                continue
            with self._lock:
                if answered:
                    self.replies.append(now)
                self._max_seq = max(self._max_seq, int(unanswered.group(1)))
                self.sequence.append((now, self._max_seq))

    def mark(self) -> tuple[float, int]:
        """A point in time and the count of replies so far, to measure a window from."""
        with self._lock:
            return time.monotonic(), len(self.replies)

    def _sequence_at(self, moment: float) -> int:
        seen = [seq for at, seq in self.sequence if at <= moment]
        return seen[-1] if seen else 0

    def stats(self, start: float, end: float) -> PingStats:
        """Figures for the window [start, end]: requests sent, replies
        received, and the longest silence between replies (counting from the
        window's start and to its end)."""
        with self._lock:
            window = [t for t in self.replies if start <= t <= end]
            sent = self._sequence_at(end) - self._sequence_at(start)
        edges = [start] + window + [end]
        longest = max(b - a for a, b in zip(edges, edges[1:]))
        return PingStats(sent=max(sent, len(window)), received=len(window), longest_gap=longest)

    def totals(self) -> PingStats:
        with self._lock:
            replies = list(self.replies)
            sent = self._max_seq
        gaps = [b - a for a, b in zip(replies, replies[1:])]
        return PingStats(sent=max(sent, len(replies)), received=len(replies),
                         longest_gap=max(gaps) if gaps else 0.0)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
