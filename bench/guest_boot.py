"""One guest's boot on its own, as Nova's libvirt driver runs it (qemu under
TCG, the Nehalem model, 512 MB, one vCPU, the image's kernel, initrd and
command line), with a node's user data (tests/golden_files.py's default
one) from a NoCloud seed, installing keepalived through the package mirror
the cloud uses (apt-cacher-ng, its cache), run here on the loopback for the
guest's user-mode network. Prints, for each boot: cloud-init's
`package_update_upgrade_install` module (the update and keepalived's
install) and the seconds from qemu's start to the poweroff the user data
ends with.

    sudo venv/bin/python -m bench.guest_boot [--image DIR] [--cmdline-extra ARGS] [--side-by-side]

--cmdline-extra adds kernel arguments to a second boot, run side by side
with one on the image's own command line (--side-by-side without it runs
two alike). No cloud may be running: its mirror shares the cache."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from tabulate import tabulate

from tests.golden_files import rendered
from vip_cloud.services.mirror import cache_dir

CHECKOUT = Path(__file__).resolve().parent.parent
# Where a guest on qemu's user-mode network reaches this machine's loopback.
HOST_FROM_GUEST = "10.0.2.2"
PACKAGE_MODULE = re.compile(r"config-package-update-upgrade-install ran successfully @[\d.]+s \+([\d.]+)s")
BOOT_TIMEOUT_S = 900
# apt-cacher-ng refused a high port ("Error resolving address for
# binding"): one next to its own 3142, on the loopback only.
MIRROR_PORT = 3143


def user_data(mirror: str) -> str:
    """The node's own cloud-config, its apt pointed at `mirror`, and a last
    command that prints cloud-init's timings on the console and powers off."""
    (node,) = [text for path, text in rendered().items() if str(path) == "default/kld-vm-1.user-data.yaml"]
    document = yaml.safe_load(node)
    document["apt"] = {
        "preserve_sources_list": False,
        "primary": [{"arches": ["default"], "uri": f"{mirror}/deb.debian.org/debian"}],
        "security": [{"arches": ["default"], "uri": f"{mirror}/deb.debian.org/debian-security"}],
    }
    document["runcmd"].append(["sh", "-c", "cloud-init analyze show > /dev/ttyS0 2>&1; poweroff"])
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)


def start_boot(image: Path, seed_text: str, extra: str, work: Path) -> tuple[subprocess.Popen, float]:
    seed = work / "seed"
    seed.mkdir(parents=True)
    (seed / "user-data").write_text(seed_text)
    (seed / "meta-data").write_text(f"instance-id: {uuid.uuid4()}\nlocal-hostname: kld-vm-1\n")
    subprocess.run(
        ["genisoimage", "-quiet", "-output", str(work / "seed.iso"), "-volid", "cidata", "-joliet", "-rock"]
        + [str(seed / "user-data"), str(seed / "meta-data")],
        check=True,
    )
    disk = work / "root.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "root.img"), "-F", "raw", str(disk), "2G"],
        check=True,
    )
    cmdline = f"{(image / 'cmdline').read_text().strip()} {extra}".strip()
    argv = [
        "qemu-system-x86_64",
        "-machine",
        "pc,accel=tcg",
        "-cpu",
        "Nehalem",
        "-m",
        "512",
        "-smp",
        "1",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-kernel",
        str(image / "vmlinuz"),
        "-initrd",
        str(image / "initrd.img"),
        "-append",
        cmdline,
        "-drive",
        f"file={disk},if=virtio,format=qcow2",
        "-drive",
        f"file={work / 'seed.iso'},if=virtio,format=raw,readonly=on",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-serial",
        f"file:{work / 'console.log'}",
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), time.monotonic()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guest_boot", description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="the image's directory (default: cloud/guest/build-image.sh's)")
    parser.add_argument("--cmdline-extra", default="", help="kernel arguments for a second boot, side by side")
    parser.add_argument("--side-by-side", action="store_true", help="two boots at once even without --cmdline-extra")
    args = parser.parse_args(argv)
    if subprocess.run(["pgrep", "-x", "apt-cacher-ng"], capture_output=True).returncode == 0:
        print(
            "an apt-cacher-ng runs already (a local cloud?): it shares the mirror's cache; stop it first",
            file=sys.stderr,
        )
        return 2
    image = args.image or Path(
        subprocess.run(
            ["bash", str(CHECKOUT / "cloud/guest/build-image.sh")], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    variants = [("the image's command line", "")]
    if args.cmdline_extra or args.side_by_side:
        variants.append(
            (f"+ {args.cmdline_extra}" if args.cmdline_extra else "the same, side by side", args.cmdline_extra)
        )
    work = Path(tempfile.mkdtemp(prefix="kvip-guest-boot-"))
    (work / "acng").mkdir()
    (work / "acng" / "acng.conf").write_text("# Every setting is on the command line.\n")
    mirror = subprocess.Popen(
        ["apt-cacher-ng", "-c", str(work / "acng"), "ForeGround=1", "BindAddress=127.0.0.1", f"Port={MIRROR_PORT}"]
        + [f"CacheDir={cache_dir()}", f"LogDir={work / 'acng'}", f"SocketPath={work / 'acng.socket'}"]
        + [f"PidFile={work / 'acng.pid'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    boots: list[tuple[str, Path, subprocess.Popen, float]] = []
    rows = []
    try:
        seed_text = user_data(f"http://{HOST_FROM_GUEST}:{MIRROR_PORT}")
        for number, (label, extra) in enumerate(variants):
            directory = work / f"boot-{number}"
            process, started = start_boot(image, seed_text, extra, directory)
            boots.append((label, directory, process, started))
        for label, directory, process, started in boots:
            process.wait(timeout=BOOT_TIMEOUT_S)
            wall = time.monotonic() - started
            console = (directory / "console.log").read_text(errors="replace")
            install = PACKAGE_MODULE.search(console)
            rows.append(
                [label, f"{float(install.group(1)):.1f}" if install else "failed (see its console)", f"{wall:.1f}"]
            )
    finally:
        for _, _, process, _ in boots:
            if process.poll() is None:
                process.kill()
                process.wait()
        mirror.terminate()
        mirror.wait(timeout=30)
    print(f"image: {image}")
    print(tabulate(rows, headers=["boot", "keepalived's install (s)", "boot to poweroff (s)"]))
    if all(row[1][0].isdigit() for row in rows):
        shutil.rmtree(work)
        return 0
    print(f"the consoles are kept in {work}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
