"""Host keys are trusted from the VM's own console, never blindly: the
parsing of what cloud-init prints, the known_hosts file as OpenSSH reads it,
and the rules of first contact."""

import subprocess

import pytest

from vip_stack.hostkeys import (
    HostKeyNotPrinted,
    HostKeyRefused,
    HostKeyVerifier,
    KnownHosts,
    console_host_keys,
    users_known_hosts,
)

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0c2Vjb25kZXhhbXBsZWtleWZvcnRlc3RzMDAwMDA"
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBExample"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFub3RoZXJrZXl0aGF0aXNub3R0aGVjb25zb2xlcw"


def console(*keys: str) -> str:
    """A console log as a Debian or Ubuntu cloud image prints it at first boot."""
    return (
        "[    1.234567] Run /init as init process\n"
        "ci-info: no authorized SSH keys fingerprints found for user debian.\n"
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        "256 SHA256:abc root@kld-vm-1 (ED25519)\n"
        "-----END SSH HOST KEY FINGERPRINTS-----\n"
        "-----BEGIN SSH HOST KEY KEYS-----\n"
        + "".join(f"{key} root@kld-vm-1\n" for key in keys)
        + "-----END SSH HOST KEY KEYS-----\n"
        "Cloud-init v. 22.4.2 finished at Sun, 06 Dec 2026 20:00:00 +0000. Up 14.21 seconds\n"
    )


def test_the_keys_are_read_from_the_block_cloud_init_prints():
    assert console_host_keys(console(ECDSA, ED25519)) == [ECDSA, ED25519]


def test_the_last_complete_block_counts_and_a_cut_one_is_ignored():
    rebooted = console(OTHER) + console(ED25519) + "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAcut"
    assert console_host_keys(rebooted) == [ED25519]
    assert console_host_keys("[    0.000000] Linux version 6.1.0\n") == []


class Consoles:
    def __init__(self, logs: dict[str, str], ports: dict[str, str] | None = None):
        self.logs, self.ports = logs, ports or {}
        self.asked: list[str] = []

    def console_output(self, instance_id: str) -> str:
        self.asked.append(instance_id)
        return self.logs.get(instance_id, "")

    def instance_on_port(self, port_id: str) -> str | None:
        return self.ports.get(port_id)

    def instance_behind_floating_ip(self, address: str) -> str | None:
        return "i-jump" if address == "203.0.113.5" else None


def test_a_first_contact_trusts_what_the_console_printed(tmp_path):
    known = KnownHosts(tmp_path / "known_hosts")
    verifier = HostKeyVerifier(
        known,
        Consoles({"i-1": console(ED25519), "i-jump": console(ECDSA)}),
        {"10.0.0.11": "i-1"},
        floating=["203.0.113.5"],
    )
    verifier.verify("10.0.0.11", "kld-vm-1 (10.0.0.11)")
    verifier.verify("203.0.113.5", "the jumphost")
    assert known.keys_for("10.0.0.11") == {ED25519}
    assert known.keys_for("203.0.113.5") == {ECDSA}
    # Hashed, as Debian's ssh_config asks: the file does not list the addresses.
    assert "10.0.0.11" not in (tmp_path / "known_hosts").read_text()


def test_a_node_is_found_from_its_port_when_the_gate_cannot_name_its_instance(tmp_path):
    known = KnownHosts(tmp_path / "known_hosts")
    consoles = Consoles({"i-2": console(ED25519)}, ports={"port-2": "i-2"})
    HostKeyVerifier(known, consoles, ports={"10.0.0.12": "port-2"}).verify("10.0.0.12", "kld-vm-2")
    assert known.keys_for("10.0.0.12") == {ED25519}


def test_a_known_key_is_kept_and_the_console_is_not_asked(tmp_path):
    known = KnownHosts(tmp_path / "known_hosts")
    known.trust("10.0.0.11", [OTHER])
    consoles = Consoles({"i-1": console(ED25519)})
    HostKeyVerifier(known, consoles, {"10.0.0.11": "i-1"}).verify("10.0.0.11", "kld-vm-1")
    assert known.keys_for("10.0.0.11") == {OTHER} and consoles.asked == []


def test_a_node_the_rollout_recreated_gets_its_new_key_in_place_of_the_old(tmp_path):
    known = KnownHosts(tmp_path / "known_hosts")
    known.trust("10.0.0.11", [OTHER])
    known.trust("10.0.0.12", [ECDSA])
    verifier = HostKeyVerifier(
        known, Consoles({"i-1b": console(ED25519)}), {"10.0.0.11": "i-1b"}, recreated=["10.0.0.11"]
    )
    verifier.verify("10.0.0.11", "kld-vm-1")
    assert known.keys_for("10.0.0.11") == {ED25519}
    assert known.keys_for("10.0.0.12") == {ECDSA}, "the other node's key is untouched"
    assert not (tmp_path / "known_hosts.old").exists()


def test_a_vm_still_booting_has_printed_no_key_yet(tmp_path):
    verifier = HostKeyVerifier(KnownHosts(tmp_path / "kh"), Consoles({"i-1": "[ 0.1] booting\n"}), {"10.0.0.11": "i-1"})
    with pytest.raises(HostKeyNotPrinted, match="openstack console log show i-1"):
        verifier.verify("10.0.0.11", "kld-vm-1 (10.0.0.11)")


def test_a_host_with_no_known_key_and_no_instance_is_refused(tmp_path):
    with pytest.raises(HostKeyRefused, match="kld-vm-3 is not known"):
        HostKeyVerifier(KnownHosts(tmp_path / "kh"), Consoles({})).verify("10.0.0.13", "kld-vm-3")


def test_the_users_known_hosts_is_where_their_openssh_keeps_keys(tmp_path):
    config = tmp_path / "config"
    config.write_text(f"Host *\n  UserKnownHostsFile {tmp_path}/mine\n  HashKnownHosts no\n")
    found = users_known_hosts(["ssh", "-F", str(config)], "debian@203.0.113.5")
    assert found.path == tmp_path / "mine" and not found.hashed
    default = users_known_hosts(["ssh", "-F", "/dev/null"], "debian@203.0.113.5")
    assert default.path.name == "known_hosts" and default.path.parent.name == ".ssh"


def test_openssh_reads_the_keys_written_for_it(tmp_path):
    known = KnownHosts(tmp_path / "known_hosts")
    known.trust("10.0.0.11", [ED25519])
    found = subprocess.run(
        ["ssh-keygen", "-F", "10.0.0.11", "-f", str(known.path)], capture_output=True, text=True, check=True
    )
    assert ED25519.split()[1] in found.stdout
