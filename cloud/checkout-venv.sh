#!/usr/bin/env bash
# The interpreter that runs the local cloud from this checkout: a small
# virtualenv (.cloud-venv, or KVIP_CLOUD_CHECKOUT_VENV) layered on the
# services' cached one (install.sh), holding this checkout's vip_hosts and
# vip_cloud. The cached virtualenv is shared by every clone on the machine, so
# nothing of a checkout goes into it; here they are copies (not editable), so
# that editing the checkout does not change a running cloud, made again
# whenever the sources change. Prints the virtualenv's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
checkout=$(dirname "$here")
services=$(bash "$here/install.sh")
venv=${KVIP_CLOUD_CHECKOUT_VENV:-$checkout/.cloud-venv}
sources=$(cd "$checkout" && find hosts cloud -name '*.py' -o -name pyproject.toml | LC_ALL=C sort)
key=$({ echo "$services"; (cd "$checkout" && cat $sources); } | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$key" ]; then
	rm -rf "$venv"
	"$services/bin/python" -m venv --without-pip "$venv" >&2
	site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
	services_site=$("$services/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
	# The services' packages after this virtualenv's own, their .pth files
	# read too (site.addsitedir): pip, setuptools, nova and openstacksdk
	# come from there.
	echo "import site; site.addsitedir('$services_site')" >"$site/keepalived-vip-services.pth"
	# Built from a copy: a build in place would leave build/ in the checkout.
	copy=$(mktemp -d)
	trap 'rm -rf "$copy"' EXIT
	(cd "$checkout" && cp --parents $sources "$copy")
	if ! "$venv/bin/python" -m pip install --quiet --no-deps "$copy/hosts" "$copy/cloud" >&2; then
		echo "cloud: pip could not install vip_hosts and vip_cloud into $venv (above)" >&2
		exit 1
	fi
	echo "$key" >"$venv/.installed"
fi
echo "$venv"
