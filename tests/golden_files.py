"""The golden files: every node's whole keepalived.conf and user data for
each feature combination, rendered with fixed addresses and password, kept in
tests/golden/rendered/ and compared in full by test_rendering.py.

After an intended change to the rendering, regenerate them and read the diff:

    make golden        # venv/bin/python -m tests.golden_files
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from vip_stack.rendering import (
    VrrpGroup,
    plan_keepalived,
    render_jumphost_user_data,
    render_keepalived_conf,
    render_user_data,
)
from vip_stack.settings import parse_settings

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "rendered"
REQUIRED = {"flavorName": "STD2-1-2", "sshAllowedCidrs": ["198.51.100.0/24"], "vrrpPassword": "s3cr3t"}
ADDRESSES = {"kld-vm-1": "192.168.0.11", "kld-vm-2": "192.168.0.22", "kld-vm-3": "192.168.0.33"}
THREE_NODES = [
    {"name": "kld-vm-1", "priority": 120},
    {"name": "kld-vm-2", "priority": 90},
    {"name": "kld-vm-3", "priority": 60},
]
HEALTH = {"command": "curl -fsS http://127.0.0.1:8080/healthz", "interval": 1, "fall": 3, "rise": 2}

# Combination name -> the keys it sets beyond the required ones.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "reference-multicast-ens3": {"vrrpMode": "multicast", "vrrpInterface": "ens3"},
    "three-nodes": {"nodes": THREE_NODES},
    "vrrp-v3": {"advertInterval": "0.2"},
    "no-preempt": {"preempt": False},
    "health-check": {"healthCheck": HEALTH},
    "notify": {"notifyCommand": 'logger -t vip "now $1"'},
    "all-features-v3": {"preempt": False, "healthCheck": HEALTH, "notifyCommand": "true", "advertInterval": "0.2"},
}


def rendered() -> dict[Path, str]:
    """Relative path under GOLDEN_DIR -> the text it must hold."""
    files: dict[Path, str] = {}
    for combination, changes in COMBINATIONS.items():
        settings = parse_settings({**REQUIRED, **changes})
        for config in plan_keepalived(
            VrrpGroup.of(settings), ADDRESSES, "192.168.0.0/24", settings.vrrp_password.get_secret_value()
        ):
            files[Path(combination) / f"{config.router_id}.keepalived.conf"] = render_keepalived_conf(config)
            files[Path(combination) / f"{config.router_id}.user-data.yaml"] = render_user_data(config)
    # The jumphost's is the same for every combination.
    files[Path("jumphost.user-data.yaml")] = render_jumphost_user_data()
    return files


def write() -> int:
    if GOLDEN_DIR.exists():
        shutil.rmtree(GOLDEN_DIR)
    files = rendered()
    for relative, text in files.items():
        target = GOLDEN_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return len(files)


if __name__ == "__main__":
    print(f"wrote {write()} golden files under {GOLDEN_DIR}", file=sys.stderr)
