"""The example config the tests run the program with."""

from vip_lab.evaluate import EXAMPLE_STACK_FILE, PROJECT_DIR, run_program  # noqa: F401
from vip_lab.fake_openstack import FakeCloud  # noqa: F401
from vip_stack.settings import config_from_stack_file

EXAMPLE_PASSWORD = "s3cr3t"
# The example stack, plus the one value only the CLI could encrypt into it.
EXAMPLE_CONFIG = {**config_from_stack_file(EXAMPLE_STACK_FILE), "vrrpPassword": EXAMPLE_PASSWORD}
