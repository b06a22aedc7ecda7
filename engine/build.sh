#!/usr/bin/env bash
# Builds the Pulumi engine's programs from their Go modules at pinned versions
# and puts them in .engine/bin. Each build is cached outside the checkout,
# keyed by its version and the sha256 of its inputs, so a fresh clone on the
# same machine builds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=/dev/null
. "$here/versions.env"

# Root's builds are shared by every clone on the machine; a user's live in
# their own cache.
if [ "$(id -u)" = 0 ]; then
	default_cache=/var/cache/keepalived-vip/engine
else
	default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/keepalived-vip/engine
fi
cache=${KVIP_ENGINE_CACHE:-$default_cache}
bin=$root/.engine/bin
# Providers stay off PATH: a resource plugin found on PATH makes every pulumi
# command warn "using pulumi-resource-openstack from $PATH". The engine takes
# ours from its plugin cache, where the end of this script installs it.
plugins=$root/.engine/plugins
# Release settings of Pulumi's own builds (goreleaser).
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
goflags=(-trimpath -tags "osusergo,grpcnotrace")
stamp=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION

command -v go >/dev/null || { echo "make engine: needs Go (the go command) on PATH" >&2; exit 1; }

# key DIR VERSION: where the build of DIR's module at VERSION is cached: by
# the hash of its sources (a generated schema.json is not one).
key() {
	local sum
	sum=$(cd "$here/$1" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name build.sh \) |
		LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
	echo "$cache/$1-$2-$sum"
}

# cached NAME DIR VERSION COMMAND...: runs COMMAND OUTDIR once per key, then
# installs OUTDIR/NAME into .engine/bin (a provider into .engine/plugins).
cached() {
	local name=$1 dir=$2 version=$3 out log started destination=$bin
	shift 3
	case $name in pulumi-resource-*) destination=$plugins ;; esac
	out=$(key "$dir" "$version")
	if [ -x "$out/$name" ]; then
		echo "engine: $name $version (cached in $out)"
	else
		echo "engine: building $name $version ..."
		mkdir -p "$cache"
		log=$(mktemp "$cache/$name.XXXXXX.log")
		started=$(date +%s)
		rm -rf "$out.tmp"
		if ! "$@" "$out.tmp" >"$log" 2>&1; then
			echo "engine: building $name $version failed; the end of its output ($log):" >&2
			tail -n 40 "$log" >&2
			exit 1
		fi
		rm -rf "$out" && mv "$out.tmp" "$out" && rm -f "$log"
		echo "engine: built $name $version in $(($(date +%s) - started)) s"
	fi
	install_bin "$out/$name" "$destination"
}

# go_build NAME DIR PACKAGE OUTDIR: a Pulumi program, stamped with the CLI's version.
go_build() {
	(cd "$here/$2" && go build "${goflags[@]}" -ldflags "-X $stamp" -o "$4/$1" "$3")
}

# install_bin FILE DIR: into DIR, as a hard link where the file system allows.
install_bin() {
	mkdir -p "$2"
	ln -f "$1" "$2/" 2>/dev/null || cp -f "$1" "$2/"
}

cached pulumi pulumi "$PULUMI_VERSION" go_build pulumi pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
cached pulumi-language-python language-python "$PULUMI_VERSION" go_build pulumi-language-python language-python .
# The OpenStack provider at the version the pulumi-openstack SDK asks for.
cached pulumi-resource-openstack openstack "$OPENSTACK_VERSION" env VERSION="$OPENSTACK_VERSION" "$here/openstack/build.sh"

# The two files the CLI's distribution puts beside the language host, from the
# Python SDK's part of the sdk/v3 module at the same version: the program
# runner and the shim that starts Python dynamic providers.
sdk=$(cd "$here/language-python" && go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" |
	sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$sdk" ] || { echo "engine: the sdk/v3 module v$PULUMI_VERSION is not in the module cache" >&2; exit 1; }
for file in cmd/pulumi-language-python-exec dist/pulumi-resource-pulumi-python; do
	install -m 0755 "$sdk/python/$file" "$bin/"
done

# The engine looks a provider up in PULUMI_HOME's plugin cache at exactly the
# version the SDK asks for; install ours there (~/.pulumi unless PULUMI_HOME
# says otherwise) unless the same file already is.
plugin_home=${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-openstack-v$OPENSTACK_VERSION
# A provider left in .engine/bin by an older make engine would still be on PATH.
rm -f "$bin/pulumi-resource-openstack"
if ! cmp -s "$plugins/pulumi-resource-openstack" "$plugin_home/pulumi-resource-openstack"; then
	PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
		"$bin/pulumi" plugin install resource openstack "$OPENSTACK_VERSION" --file "$plugins/pulumi-resource-openstack" >/dev/null
fi
echo "engine: ready in $bin: pulumi $("$bin/pulumi" version), openstack provider $("$plugins/pulumi-resource-openstack" -version) (installed in $plugin_home)"
