"""A newcomer follows the README's local-cloud section as written, with what
a new user has: a fresh ~/.ssh (root's: OpenSSH finds ~ from the account,
not $HOME) holding only a key of their own, loaded into an agent, so no ssh
config and no known host; a fresh ~/.pulumi, so no login, stack or plugin;
and this machine's environment otherwise. `pulumi up` must end with the VIP
served, the check with --failover must pass at once with no manual `ssh`,
nothing may warn, and the clean-up must leave the checkout as it was."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import CHECKOUT

pytestmark = [pytest.mark.cloud, pytest.mark.engine]

SECTION = "### Without an account anywhere: the local cloud"


def readme_commands() -> list[str]:
    """The shell lines of the section's first code block, as a reader copies them."""
    text = (CHECKOUT / "README.md").read_text()
    section = text.split(SECTION, 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


def test_the_readme_section_starts_the_cloud_and_ends_taking_it_down():
    commands = readme_commands()
    assert commands[0].startswith("make cloud engine")
    assert commands[-1].startswith("make cloud-down")


def git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--ignored=no"], cwd=CHECKOUT, capture_output=True, text=True, check=True
    ).stdout


def test_a_newcomer_follows_the_readme_and_the_vip_survives_the_failover_check(local_cloud, tmp_path):
    commands = readme_commands()
    # The tier's fixture takes the cloud down at the end of the session and
    # checks that nothing of it is left; taking it down here would pull it
    # from under the tests after this one.
    session = commands[:-1]
    before = git_status()
    transcript = tmp_path / "newcomer.log"
    # What the newcomer has before the README: a key, and an agent (empty).
    prologue = [
        # Over the account's own, in this process's mount namespace only.
        "mkdir -p /root/.ssh /root/.pulumi",
        "mount -t tmpfs -o mode=0700 newcomer-ssh /root/.ssh",
        "mount -t tmpfs -o mode=0700 newcomer-pulumi /root/.pulumi",
        "ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519",
        'eval "$(ssh-agent -s)" >/dev/null',
        "trap 'ssh-agent -k >/dev/null' EXIT",
        "set -x",
    ]
    script = "\n".join(["set -e", *prologue, *session])
    env = {
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "LANG": "C.UTF-8",
        # This machine's own, with nothing of the checkout's: the README's
        # export puts the engine first.
        "PATH": ":".join(
            entry
            for entry in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
            if entry and not Path(entry).resolve().is_relative_to(CHECKOUT)
        ),
        # Each command as the reader sees it, before what it prints.
        "PS4": "\n$ ",
    }
    try:
        with transcript.open("w") as log:
            # A mount namespace of its own: the fresh ~/.ssh and ~/.pulumi are the newcomer's alone.
            result = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                cwd=CHECKOUT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=1800,
            )
    finally:
        # A session that stopped half-way leaves no stack file and no key
        # pair for the tests after it (its instances go with the cloud).
        if "Pulumi.local.yaml" in git_status() and "Pulumi.local.yaml" not in before:
            subprocess.run(["git", "checkout", "--", "Pulumi.local.yaml"], cwd=CHECKOUT, check=False)
        demo = local_cloud.demo()
        key_pair_left = demo.compute.find_keypair("kvip-local") is not None
        if key_pair_left:
            demo.compute.delete_keypair("kvip-local")
    printed = transcript.read_text()
    saved = os.environ.get("KVIP_NEWCOMER_TRANSCRIPT")
    if saved:
        Path(saved).write_text(printed)
    print(printed)
    assert result.returncode == 0, printed[-6000:]
    assert "all checks passed" in printed
    assert re.search(r"^ok\s+.*holds the VIP .* later and the jumphost's pings resumed", printed, re.M), printed
    warnings = [line for line in printed.splitlines() if re.match(r"\s*warning\b", line, re.I)]
    assert not warnings, warnings
    assert "FAIL" not in printed
    assert git_status() == before, "the clean-up left the checkout as it was"
    left = [server.name for server in local_cloud.admin().compute.servers(all_projects=True)]
    assert not [name for name in left if name.startswith("kld-")], f"servers left after pulumi destroy: {left}"
    assert not key_pair_left, "the README's clean-up deletes the key pair it made"
