# Each target sets up what it needs first: the virtualenv with the package and
# its dev extras, and Debian's packages (root or sudo), so both work on a fresh
# Debian/Ubuntu.
VENV := venv
PYTHON := $(VENV)/bin/python
DEBIAN_PACKAGES := python3-venv keepalived cloud-init iproute2 iputils-ping util-linux openssh-server openssh-client sudo curl shellcheck nftables
# The local cloud's own: its database, message queue and switch, and what
# Neutron's agents run (iptables and conntrack for NAT, arping for GARP).
# dnsmasq is the DHCP agent's, for real VMs; libvirt-dev, pkg-config, gcc
# and python3-dev build the libvirt binding in the services' virtualenv
# (cloud/install.sh, run before the guest image's packages come).
CLOUD_DEBIAN_PACKAGES := mariadb-server rabbitmq-server openvswitch-switch ethtool iptables conntrack iputils-arping dnsmasq-base dnsmasq-utils libvirt-dev pkg-config gcc python3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: lab test test-vms unit lint golden reference bench sweep plan engine cloud cloud-down cloud-prerequisites debian-packages clean

lab: $(VENV)/.installed debian-packages
	$(SUDO) $(PYTHON) -m vip_lab --config $(or $(CONFIG),Pulumi.dev.yaml) --plot lab-timeline.png

bench: $(VENV)/.installed debian-packages
	$(SUDO) $(PYTHON) bench/failover.py $(foreach c,$(or $(CONFIG),Pulumi.dev.yaml bench/fast-failover.yaml),--config $(c)) --plot bench-timeline.png

# The speed/robustness curve over advertInterval (about 25 minutes).
sweep: $(VENV)/.installed debian-packages
	$(SUDO) $(PYTHON) bench/sweep.py --plot sweep.png

# The gates first (lint, format, types), then every test, the real engine's
# and the local cloud's tiers too (the tests bring the cloud up, last, and down).
test: lint debian-packages engine cloud-prerequisites guest-image
	$(SUDO) env KVIP_CLOUD_VENV=$$(bash cloud/install.sh) $(PYTHON) -m pytest --durations=60

# make test's last tier alone: the life cycle on real VMs
# (tests/test_lifecycle.py, about 20 minutes).
test-vms: lint debian-packages engine cloud-prerequisites guest-image
	$(SUDO) env KVIP_CLOUD_VENV=$$(bash cloud/install.sh) $(PYTHON) -m pytest --durations=30 tests/test_lifecycle.py

# What needs neither root nor Debian's packages: settings, rendered text,
# the program under mocks, the check's parsing. Seconds.
unit: $(VENV)/.installed
	$(PYTHON) -m pytest -m "not system and not engine and not cloud"

# After an intended change to the rendering: rewrite tests/golden/rendered, then read the diff.
golden: $(VENV)/.installed
	$(PYTHON) -m tests.golden_files

# After a change to the settings model's fields: rewrite Pulumi.yaml's config
# schema and the reference in docs/configuration.md, then read the diff.
reference: $(VENV)/.installed
	$(PYTHON) -m tests.config_reference

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The real Pulumi CLI and engine, its Python language host, the dynamic
# providers' shim and the OpenStack provider, built from Go modules into
# .engine/bin (cached outside the checkout, so a second run builds nothing).
engine:
	@command -v go >/dev/null || { echo "make engine needs Go 1.26 or newer (the go command) on PATH" >&2; exit 1; }
	bash engine/build.sh

# A real all-in-one OpenStack on this machine (docs/cloud.md); OS_CLOUD=local
# with .cloud/clouds.yaml. Idempotent. Its instances are lab hosts (network
# namespaces on this machine's kernel, seconds per boot), or with
# COMPUTE=libvirt virtual machines of Nova's libvirt driver booting the guest
# image (minutes per boot under TCG). It runs from .cloud-venv: this
# checkout's vip_cloud and vip_hosts over the services' cached virtualenv
# (cloud/checkout-venv.sh).
COMPUTE ?= namespace
cloud: debian-packages cloud-prerequisites guest-image
	services=$$(bash cloud/install.sh) && cloud=$$(bash cloud/checkout-venv.sh) && \
		image=$$($(SUDO) bash cloud/guest/build-image.sh) && \
		$(SUDO) $$cloud/bin/python -m vip_cloud --venv $$services --compute $(COMPUTE) --image $$image up

# Stops every process and removes every namespace, device and file of the cloud.
cloud-down:
	cloud=$$(bash cloud/checkout-venv.sh) && $(SUDO) $$cloud/bin/python -m vip_cloud down

# Debian's packages, the services' virtualenv (cached outside the checkout)
# and this checkout's over it.
cloud-prerequisites:
	@if ! dpkg -s $(CLOUD_DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(CLOUD_DEBIAN_PACKAGES); \
	fi
	bash cloud/checkout-venv.sh >/dev/null

plan: $(VENV)/.installed
	$(PYTHON) -m vip_lab.plan --config $(or $(CONFIG),Pulumi.dev.yaml)

$(VENV)/.installed: requirements.txt pyproject.toml hosts/pyproject.toml lab/pyproject.toml cloud/pyproject.toml
	@command -v python3 >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3 python3-venv; }
	python3 -m venv $(VENV) || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && python3 -m venv $(VENV); }
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	# The package itself, editable, with the tools' extras (tests, the lab's plots).
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	# The tools' own distributions, beside the product: the hosts, the lab and
	# the cloud (its control side: its services run from their own virtualenv).
	$(PYTHON) -m pip install --quiet -e hosts -e lab -e cloud
	touch $@

debian-packages:
	@if ! dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(DEBIAN_PACKAGES); \
	fi

clean:
	rm -rf $(VENV) .cloud-venv .pytest_cache

# The local cloud's guest image (cloud/guest/build-image.sh), cached outside
# the checkout, and what boots it: qemu, genisoimage for config drives,
# apt-cacher-ng as the guests' mirror, and Debian's libvirt for Nova's libvirt
# driver. Without recommends: libvirt's would bring its
# autostarted default network. Package scripts start no daemon (policy-rc.d):
# the cloud's supervisor starts them, there is no systemd.
GUEST_DEBIAN_PACKAGES := mmdebstrap e2fsprogs qemu-system-x86 qemu-utils genisoimage apt-cacher-ng libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients

guest-image:
	@if ! dpkg -s $(GUEST_DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		policy=/usr/sbin/policy-rc.d; own=; \
		if [ ! -e $$policy ]; then \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && $(SUDO) chmod 755 $$policy && own=1; \
		fi; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends $(GUEST_DEBIAN_PACKAGES); \
		rc=$$?; [ -z "$$own" ] || $(SUDO) rm -f $$policy; exit $$rc; \
	fi
	$(SUDO) bash cloud/guest/build-image.sh

.PHONY: guest-image
