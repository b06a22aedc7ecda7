#!/usr/bin/env bash
# The local cloud's services (OpenStack 2026.2 from PyPI, pinned by
# upper-constraints.txt) in a virtualenv cached outside the checkout, keyed by
# the requirements, the constraints and the Python: a second clone on the
# same machine installs nothing. Prints the virtualenv's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	default_cache=/var/cache/keepalived-vip/cloud
else
	default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/keepalived-vip/cloud
fi
cache=${KVIP_CLOUD_CACHE:-$default_cache}
python=${PYTHON:-python3}
key=$({ cat "$here/requirements.txt" "$here/upper-constraints.txt"; "$python" -VV; } | sha256sum | cut -c1-16)
venv=$cache/venv-$key
if [ ! -e "$venv/.installed" ]; then
	echo "cloud: installing OpenStack's services into $venv (a few minutes, once)" >&2
	rm -rf "$venv"
	mkdir -p "$cache"
	"$python" -m venv "$venv" >&2
	"$venv/bin/pip" install --quiet --upgrade pip >&2
	if ! "$venv/bin/pip" install --quiet -c "$here/upper-constraints.txt" -r "$here/requirements.txt" >&2; then
		echo "cloud: pip could not install the services (above)" >&2
		exit 1
	fi
	touch "$venv/.installed"
fi
echo "$venv"
