package provider

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

// Token rules, e.g. openstack_networking_secgroup_rule_v2 ->
// openstack:networking/secGroupRule:SecGroupRule:
//
//   - drop the "openstack_" prefix; the first word picks the module
//     (moduleOf); a name whose first word is no module goes to "index" whole;
//   - the remaining words are camel-cased, with the compound words in
//     compoundWords split the way the SDK spells them (secgroup -> SecGroup);
//   - the version suffix (_v2) is dropped, except for the names in
//     keepVersionResource / keepVersionData (the SDK publishes e.g. QosV3,
//     getInstanceV2), or
//     when nothing else is left (openstack_bgpvpn_v2 -> bgpvpn/v2:V2);
//   - a data source's name gets "get" in front;
//   - the file part of the token is the name with its first letter lowered.
//
// resourceNames and dataSourceNames override the name (after the rules pick
// the module) where the published SDK does not follow them.

const pkgName = "openstack"

var moduleOf = map[string]string{
	"bgpvpn":           "bgpvpn",
	"blockstorage":     "blockstorage",
	"compute":          "compute",
	"containerinfra":   "containerinfra",
	"db":               "database",
	"dns":              "dns",
	"fw":               "firewall",
	"identity":         "identity",
	"images":           "images",
	"keymanager":       "keymanager",
	"lb":               "loadbalancer",
	"loadbalancer":     "loadbalancer",
	"networking":       "networking",
	"objectstorage":    "objectstorage",
	"orchestration":    "orchestration",
	"sharedfilesystem": "sharedfilesystem",
	"vpnaas":           "vpnaas",
}

var compoundWords = map[string]string{
	"addressscope":    "AddressScope",
	"clustertemplate": "ClusterTemplate",
	"floatingip":      "FloatingIp",
	"ipsec":           "IpSec",
	"l7policy":        "L7Policy",
	"l7rule":          "L7Rule",
	"loadbalancer":    "LoadBalancer",
	"nodegroup":       "NodeGroup",
	"portforwarding":  "PortForwarding",
	"quotaset":        "QuotaSet",
	"recordset":       "RecordSet",
	"secgroup":        "SecGroup",
	"securityservice": "SecurityService",
	"servergroup":     "ServerGroup",
	"sharenetwork":    "ShareNetwork",
	"subnetpool":      "SubnetPool",
	"tempurl":         "TempUrl",
}

// keepVersionResource and keepVersionData list the Terraform names whose
// SDK name keeps the version suffix (mostly those the provider gained after
// the first mappings were written), for resources and data sources apart:
// openstack_compute_instance_v2 is compute/instance:Instance but
// compute/getInstanceV2:getInstanceV2.
var keepVersionResource = set(
	"openstack_bgpvpn_network_associate_v2",
	"openstack_bgpvpn_port_associate_v2",
	"openstack_bgpvpn_router_associate_v2",
	"openstack_blockstorage_qos_association_v3",
	"openstack_blockstorage_qos_v3",
	"openstack_blockstorage_volume_type_access_v3",
	"openstack_blockstorage_volume_type_v3",
	"openstack_compute_aggregate_v2",
	"openstack_compute_quotaset_v2",
	"openstack_dns_quota_v2",
	"openstack_dns_zone_share_v2",
	"openstack_fw_group_v2",
	"openstack_fw_policy_v2",
	"openstack_fw_rule_v2",
	"openstack_identity_ec2_credential_v3",
	"openstack_identity_endpoint_v3",
	"openstack_identity_group_v3",
	"openstack_identity_limit_v3",
	"openstack_identity_registered_limit_v3",
	"openstack_identity_service_v3",
	"openstack_identity_user_membership_v3",
	"openstack_keymanager_container_v1",
	"openstack_keymanager_order_v1",
	"openstack_keymanager_secret_v1",
	"openstack_lb_flavor_v2",
	"openstack_lb_flavorprofile_v2",
	"openstack_lb_l7policy_v2",
	"openstack_lb_l7rule_v2",
	"openstack_networking_address_group_v2",
	"openstack_networking_bgp_peer_v2",
	"openstack_networking_bgp_speaker_v2",
	"openstack_networking_portforwarding_v2",
	"openstack_networking_quota_v2",
	"openstack_networking_rbac_policy_v2",
	"openstack_networking_router_routes_v2",
	"openstack_networking_segment_v2",
	"openstack_objectstorage_account_v1",
	"openstack_orchestration_stack_v1",
	"openstack_taas_tap_mirror_v2",
)

var keepVersionData = set(
	"openstack_blockstorage_availability_zones_v3",
	"openstack_blockstorage_snapshot_v3",
	"openstack_blockstorage_volume_v3",
	"openstack_compute_aggregate_v2",
	"openstack_compute_hypervisor_v2",
	"openstack_compute_instance_v2",
	"openstack_compute_limits_v2",
	"openstack_compute_quotaset_v2",
	"openstack_dns_zone_share_v2",
	"openstack_fw_group_v2",
	"openstack_fw_policy_v2",
	"openstack_fw_rule_v2",
	"openstack_identity_project_ids_v3",
	"openstack_lb_flavor_v2",
	"openstack_lb_flavorprofile_v2",
	"openstack_lb_listener_v2",
	"openstack_lb_pool_v2",
	"openstack_networking_quota_v2",
	"openstack_networking_segment_v2",
	"openstack_networking_subnet_ids_v2",
	"openstack_workflow_workflow_v2",
)

// The SDK's names that no rule gives (some are typos it has to keep).
var resourceNames = map[string]string{
	"openstack_blockstorage_quotaset_v3": "QuoteSetV3",
	"openstack_objectstorage_object_v1":  "ContainerObject",
}

var dataSourceNames = map[string]string{
	"openstack_blockstorage_quotaset_v3":               "getQuotasetV3",
	"openstack_compute_servergroup_v2":                 "getServergroupV2",
	"openstack_dns_zone_v2":                            "getDnsZone",
	"openstack_lb_loadbalancer_v2":                     "getLoadbalancerV2",
	"openstack_loadbalancer_flavor_v2":                 "getLbFlavorDeprecated",
	"openstack_sharedfilesystem_availability_zones_v2": "getAvailbilityZones",
}

// legacyResources and legacyDataSources also keep the token the bridge's
// fallback once gave them in module "index" (e.g.
// openstack:index/lbLoadbalancerV2:LbLoadbalancerV2), as deprecated aliases,
// the way the SDK still offers them.
var legacyResources = []string{
	"openstack_bgpvpn_network_associate_v2",
	"openstack_bgpvpn_port_associate_v2",
	"openstack_bgpvpn_router_associate_v2",
	"openstack_bgpvpn_v2",
	"openstack_lb_flavorprofile_v2",
	"openstack_lb_loadbalancer_v2",
}

// legacyDataSources maps a data source to its legacy token name. The
// workflow one was once published as a resource-style name.
var legacyDataSources = map[string]string{
	"openstack_fw_group_v2":          "getFwGroupV2",
	"openstack_fw_policy_v2":         "getFwPolicyV2",
	"openstack_fw_rule_v2":           "getFwRuleV2",
	"openstack_workflow_workflow_v2": "WorkflowWorkflowV2",
}

var versionSuffix = regexp.MustCompile(`_(v[0-9]+)$`)

// splitName returns the module and the rule-made name (without "get").
func splitName(tfName string, data bool) (module, name string) {
	s := strings.TrimPrefix(tfName, pkgName+"_")
	ver := ""
	if m := versionSuffix.FindStringSubmatch(s); m != nil {
		ver = strings.ToUpper(m[1])
		s = strings.TrimSuffix(s, "_"+m[1])
	}
	words := strings.Split(s, "_")
	module, ok := moduleOf[words[0]]
	if ok {
		words = words[1:]
	} else {
		module = "index"
	}
	name = camel(words, compoundWords)
	keep := keepVersionResource[tfName]
	if data {
		keep = keepVersionData[tfName]
	}
	if name == "" || keep {
		name += ver
	}
	return module, name
}

func camel(words []string, compounds map[string]string) string {
	var b strings.Builder
	for _, w := range words {
		if c, ok := compounds[w]; ok {
			b.WriteString(c)
		} else if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func member(module, name string) string {
	return fmt.Sprintf("%s:%s/%s:%s", pkgName, module, strings.ToLower(name[:1])+name[1:], name)
}

func resourceToken(tfName string) tokens.Type {
	module, name := splitName(tfName, false)
	if n, ok := resourceNames[tfName]; ok {
		name = n
	}
	return tokens.Type(member(module, name))
}

func dataSourceToken(tfName string) tokens.ModuleMember {
	module, name := splitName(tfName, true)
	name = "get" + name
	if n, ok := dataSourceNames[tfName]; ok {
		name = n
	}
	return tokens.ModuleMember(member(module, name))
}

// legacyName is the bridge's generic fallback: everything after the
// prefix, version included, camel-cased without compound splitting.
func legacyName(tfName string) string {
	return camel(strings.Split(strings.TrimPrefix(tfName, pkgName+"_"), "_"), nil)
}

func applyLegacyTokens(prov *tfbridge.ProviderInfo) {
	for _, tfName := range legacyResources {
		cur, ok := prov.Resources[tfName]
		if !ok {
			continue
		}
		newTok := cur.Tok
		legacy := tokens.Type(member("index", legacyName(tfName)))
		prov.RenameResourceWithAlias(tfName, legacy, newTok, "index", newTok.Module().Name().String(), cur)
	}
	names := make([]string, 0, len(legacyDataSources))
	for n := range legacyDataSources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, tfName := range names {
		cur, ok := prov.DataSources[tfName]
		if !ok {
			continue
		}
		newTok := cur.Tok
		legacy := tokens.ModuleMember(member("index", legacyDataSources[tfName]))
		prov.RenameDataSource(tfName, legacy, newTok, "index", newTok.Module().Name().String(), cur)
	}
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
