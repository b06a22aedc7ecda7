"""VRRP's arithmetic: which version an advert interval needs, what each
version can carry, and how long a backup waits before it takes over
(RFC 3768 for v2, RFC 5798 for v3)."""

from __future__ import annotations

import math

# VRRP v2 carries the interval in whole seconds in an 8-bit field.
V2_MAX_ADVERT = 255
# VRRP v3 carries it in centiseconds in a 12-bit field.
V3_MIN_ADVERT, V3_MAX_ADVERT = 0.01, 40.95


def version_for(advert_interval: float) -> int:
    """VRRP v2 carries whole seconds only; anything finer needs v3."""
    return 2 if float(advert_interval).is_integer() else 3


def advert_interval_problem(interval: float) -> str | None:
    """What keeps VRRP from carrying this interval, or None."""
    if not math.isfinite(interval):
        return f"must be a finite number, got {interval}"
    if interval <= 0:
        return f"must be greater than 0 seconds, got {interval:g}"
    if version_for(interval) == 2:
        return f"must be at most {V2_MAX_ADVERT} seconds, got {interval:g}" if interval > V2_MAX_ADVERT else None
    if not V3_MIN_ADVERT <= interval <= V3_MAX_ADVERT:
        return (
            f"a fractional interval uses VRRP v3, which allows {V3_MIN_ADVERT} to {V3_MAX_ADVERT} seconds; "
            f"got {interval:g}"
        )
    if abs(round(interval * 100) - interval * 100) > 1e-6:
        return f"VRRP v3 counts in hundredths of a second; {interval:g} is finer"
    return None


def skew(version: int, advert_interval: float, priority: int) -> float:
    """How long a backup of this priority waits after the master stops (RFC 3768/5798)."""
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * advert_interval / 256


def master_down_interval(version: int, advert_interval: float, priority: int) -> float:
    """How long a backup of this priority waits without adverts before it takes over."""
    return 3 * advert_interval + skew(version, advert_interval, priority)
