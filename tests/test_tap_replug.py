"""The local cloud's tap re-plugger (cloud/vip_cloud/tap_replug.py), on the
link events `ip -o monitor link` prints, without a switch."""

from __future__ import annotations

import pytest

from vip_cloud import tap_replug

GONE = "Deleted 150: tape84a4ad8-f7: <BROADCAST,MULTICAST,PROMISC,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN"
BACK = "152: tape84a4ad8-f7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN"


@pytest.fixture
def switch(monkeypatch):
    """A switch whose interface row for the tap stays the same; the re-plugs done."""
    replugged: list[str] = []
    monkeypatch.setattr(tap_replug, "interface_row", lambda name: "5f0c9a1e")
    monkeypatch.setattr(tap_replug, "replug", replugged.append)
    return {"replugged": replugged}


def test_a_tap_made_anew_under_its_old_port_is_plugged_again(switch):
    """Nova's soft reboot: the tap goes and comes back, the port stays."""
    tap_replug.watch([GONE, BACK, BACK])
    assert switch["replugged"] == ["tape84a4ad8-f7"], "once, at its first appearance"


def test_a_port_that_os_vif_plugged_again_is_left_alone(switch, monkeypatch):
    """A hard reboot, or a new instance on the port: os-vif deletes and adds
    the port, a new row, whose tap the switch opens by itself."""
    seen = iter(["5f0c9a1e", "77d2b403"])
    monkeypatch.setattr(tap_replug, "interface_row", lambda name: next(seen))
    tap_replug.watch([GONE, BACK])
    assert switch["replugged"] == []


def test_other_links_and_new_taps_are_not_touched(switch):
    tap_replug.watch(["7: br-int: <BROADCAST,MULTICAST,UP> mtu 1500", BACK, "Deleted 9: qr-1234: <...>"])
    assert switch["replugged"] == []
