#!/usr/bin/env bash
# Builds the Pulumi engine's programs from their Go modules at pinned versions
# and puts them in .engine/bin. Each build is cached outside the checkout,
# keyed by its version and the sha256 of its inputs, so a fresh clone on the
# same machine builds nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=engine/versions.env
. "$here/versions.env"

cache=${KVIP_ENGINE_CACHE:-/var/cache/keepalived-vip/engine}
bin=$root/.engine/bin
# Release settings of Pulumi's own builds (goreleaser).
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
goflags=(-trimpath -tags osusergo,grpcnotrace)
stamp=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION

command -v go >/dev/null || { echo "make engine: needs Go (the go command) on PATH" >&2; exit 1; }

# key DIR VERSION: where the build of DIR's module at VERSION is cached.
key() {
	local sum
	sum=$(cd "$here/$1" && cat go.mod go.sum ./*.go 2>/dev/null | sha256sum | cut -c1-16)
	echo "$cache/$1-$2-$sum"
}

# build NAME DIR VERSION PACKAGE: go build PACKAGE in DIR's module, once.
build() {
	local name=$1 dir=$2 version=$3 package=$4 out log started
	out=$(key "$dir" "$version")
	if [ -x "$out/$name" ]; then
		echo "engine: $name $version (cached in $out)"
	else
		echo "engine: building $name $version ..."
		mkdir -p "$cache"
		log=$(mktemp "$cache/$name.XXXXXX.log")
		started=$(date +%s)
		if ! (cd "$here/$dir" && go build "${goflags[@]}" -ldflags "-X $stamp" -o "$out.tmp/$name" "$package") >"$log" 2>&1; then
			echo "engine: building $name $version failed; the end of the Go output ($log):" >&2
			tail -n 40 "$log" >&2
			exit 1
		fi
		rm -rf "$out" && mv "$out.tmp" "$out" && rm -f "$log"
		echo "engine: built $name $version in $(($(date +%s) - started)) s"
	fi
	install_bin "$out/$name"
}

# install_bin FILE: into .engine/bin, as a hard link where the file system allows.
install_bin() {
	mkdir -p "$bin"
	ln -f "$1" "$bin/" 2>/dev/null || cp -f "$1" "$bin/"
}

build pulumi pulumi "$PULUMI_VERSION" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
build pulumi-language-python language-python "$PULUMI_VERSION" .

# The two files the CLI's distribution puts beside the language host, from the
# Python SDK's part of the sdk/v3 module at the same version: the program
# runner and the shim that starts Python dynamic providers.
sdk=$(cd "$here/language-python" && go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" |
	sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$sdk" ] || { echo "engine: the sdk/v3 module v$PULUMI_VERSION is not in the module cache" >&2; exit 1; }
for file in cmd/pulumi-language-python-exec dist/pulumi-resource-pulumi-python; do
	install -m 0755 "$sdk/python/$file" "$bin/"
done

"$bin/pulumi" version >/dev/null
echo "engine: ready in $bin ($("$bin/pulumi" version))"
