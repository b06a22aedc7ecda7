// Package version holds the provider's version, stamped at link time:
//
//	go build -ldflags "-X keepalived-vip/engine/openstack/version.Version=5.5.3"
//
// The Pulumi engine loads plugin resource-openstack at exactly the version
// the Python SDK asks for, so this must equal the pinned pulumi-openstack.
package version

// Version is set by the linker; see build.sh.
var Version string
