#!/usr/bin/env bash
# Builds the Pulumi resource provider plugin for OpenStack:
#
#   engine/openstack/build.sh OUTDIR
#
# 1. builds pulumi-tfgen-openstack and runs it to generate
#    cmd/pulumi-resource-openstack/schema.json (not committed) from the
#    provider mapping in provider/;
# 2. builds OUTDIR/pulumi-resource-openstack with that schema embedded.
#
# Both binaries are built like Pulumi's releases (CGO_ENABLED=0, -trimpath)
# with the version stamped in: it must equal the pulumi-openstack SDK's
# version, since the engine loads plugin resource-openstack at exactly that
# version. VERSION overrides it (default below). go.mod/go.sum are used as
# they are (-mod=readonly); the Go module and build caches stay the defaults.
set -euo pipefail

VERSION="${VERSION:-5.5.3}"

die() { echo "build.sh: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
command -v go >/dev/null || die "go is not on PATH"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1" || die "cannot create $1"
out="$(cd "$1" && pwd)"
cd "$here"

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
ldflags="-s -w -X keepalived-vip/engine/openstack/version.Version=${VERSION}"
schema_dir="cmd/pulumi-resource-openstack"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "build.sh: building pulumi-tfgen-openstack (version ${VERSION})" >&2
go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$work/pulumi-tfgen-openstack" ./cmd/pulumi-tfgen-openstack \
	|| die "go build of cmd/pulumi-tfgen-openstack failed (see above)"

echo "build.sh: generating ${schema_dir}/schema.json" >&2
mkdir -p "$work/schema"
"$work/pulumi-tfgen-openstack" schema --skip-examples --out "$work/schema" >"$work/tfgen.log" 2>&1 || {
	cat "$work/tfgen.log" >&2
	die "tfgen failed (output above)"
}
[ -s "$work/schema/schema.json" ] || { cat "$work/tfgen.log" >&2; die "tfgen wrote no schema.json"; }
grep -q "\"version\": \"${VERSION}\"" "$work/schema/schema.json" || die "schema.json lacks version ${VERSION}"
cp "$work/schema/schema.json" "$schema_dir/schema.json"

echo "build.sh: building ${out}/pulumi-resource-openstack" >&2
go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/pulumi-resource-openstack" ./cmd/pulumi-resource-openstack \
	|| die "go build of cmd/pulumi-resource-openstack failed (see above)"

got="$("$out/pulumi-resource-openstack" -version 2>/dev/null || true)"
[ "$got" = "$VERSION" ] || die "built binary reports version '${got}', want '${VERSION}'"
echo "build.sh: ok: ${out}/pulumi-resource-openstack ${VERSION}" >&2
