"""Watching a VIP: which node holds it, and whether the jumphost's pings to
it come back, each through commands the caller gives (over SSH for the check
against a deployment, in the nodes' namespaces for the lab's drills). Both
keep timestamps on one clock (time.monotonic), so a failover is measured by
lining them up."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class HolderChange:
    at: float
    node: str
    holds: bool


class VipWatcher:
    """Follows the VIP on every node through `ip monitor address` (events, not
    polling: the watcher costs nothing between changes). Each node is watched
    by a command that streams `ip -o monitor address` and one that lists its
    addresses once: run in the node's namespace in the lab, over SSH against
    a real deployment."""

    def __init__(self, sources: dict[str, tuple[Sequence[str], Sequence[str]]], vip: str, track: Callable):
        self.vip = vip
        self.changes: list[HolderChange] = []
        self.holding: dict[str, bool] = {name: False for name in sources}
        self._lock = threading.Condition()
        self._pattern = re.compile(rf"\binet {re.escape(vip)}/")
        self._track = track
        for name, (monitor_argv, _) in sources.items():
            self._monitor(name, monitor_argv)
        # The monitors are subscribed (give a remote one time to start); now read where the VIP is, once.
        time.sleep(0.05)
        for name, (_, query_argv) in sources.items():
            self._query(name, query_argv)

    def _monitor(self, name: str, monitor_argv: Sequence[str]) -> None:
        monitor = self._track(
            subprocess.Popen(
                list(monitor_argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        threading.Thread(target=self._follow, args=(name, monitor), daemon=True).start()

    def _query(self, name: str, query_argv: Sequence[str]) -> None:
        out = subprocess.run(
            list(query_argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
        ).stdout
        self._record(name, bool(self._pattern.search(out)))

    def watch_again(self, name: str, monitor_argv: Sequence[str], query_argv: Sequence[str]) -> None:
        """A node was replaced: whatever it held went with it; watch its new sources."""
        self._record(name, False)
        self._monitor(name, monitor_argv)
        time.sleep(0.05)
        self._query(name, query_argv)

    def _follow(self, name: str, monitor: subprocess.Popen) -> None:
        for line in monitor.stdout or ():
            if self._pattern.search(line):
                self._record(name, not line.startswith("Deleted"))

    def _record(self, node: str, holds: bool) -> None:
        with self._lock:
            if self.holding[node] != holds:
                self.holding[node] = holds
                self.changes.append(HolderChange(time.monotonic(), node, holds))
                self._lock.notify_all()

    def holders(self) -> list[str]:
        with self._lock:
            return [name for name, holds in self.holding.items() if holds]

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float) -> float | None:
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
    with every reply timestamped as it arrives. `command` runs ping on the
    jumphost: in its namespace in the lab, over SSH against a deployment."""

    command: Sequence[str]
    track: Callable
    interval: float = 0.02
    replies: list[float] = field(default_factory=list)
    # (when, highest icmp_seq seen by then): how many requests had gone out.
    sequence: list[tuple[float, int]] = field(default_factory=list)
    # When ping was launched: a window that opens earlier is silent before
    # it for want of a ping, not of the VIP.
    started_at: float | None = None

    @staticmethod
    def ping_argv(vip: str, interval: float, deadline_seconds: int = 1800) -> list[str]:
        # ping block-buffers its output into a pipe; stdbuf makes each reply a
        # line as it comes. The deadline bounds the run even if nobody stops it.
        return ["stdbuf", "-oL", "ping", "-n", "-O", "-i", f"{interval:g}", "-W", "1", "-w", str(deadline_seconds), vip]

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._process = self.track(
            subprocess.Popen(
                list(self.command),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        )
        self._lock = threading.Lock()
        self._max_seq = 0
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

    def wait_for_reply(self, after: float, timeout: float) -> float | None:
        """Waits until a reply arrives later than `after`; returns when it did, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                later = [t for t in self.replies[-50:] if t > after]
            if later:
                return later[0]
            time.sleep(0.01)
        return None

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
        window's start, or from the ping's own if it began later, and to its
        end)."""
        if self.started_at is not None:
            start = max(start, self.started_at)
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
        return PingStats(sent=max(sent, len(replies)), received=len(replies), longest_gap=max(gaps) if gaps else 0.0)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
