"""nova-compute with our compute driver: Nova imports a driver as
nova.virt.<compute_driver> only, so the driver module is registered there
before Nova's own entry point runs (what out-of-tree drivers do by
installing into nova/virt)."""

import sys

# First: importing nova.cmd sets the process's threading model up (native
# threads since 2026.2), which must happen before anything imports eventlet.
from nova.cmd import compute as nova_compute  # isort: skip

import nova.virt

from vip_cloud import compute

sys.modules["nova.virt.labhost"] = compute
nova.virt.labhost = compute

if __name__ == "__main__":
    sys.exit(nova_compute.main())
