package provider

import "testing"

// Tokens the pulumi-openstack 5.5.3 Python SDK sends, including every one
// vip_stack/ and examples/ use, plus the rules' exceptions.
func TestTokens(t *testing.T) {
	resources := map[string]string{
		"openstack_compute_instance_v2":                "openstack:compute/instance:Instance",
		"openstack_compute_servergroup_v2":             "openstack:compute/serverGroup:ServerGroup",
		"openstack_dns_recordset_v2":                   "openstack:dns/recordSet:RecordSet",
		"openstack_networking_floatingip_v2":           "openstack:networking/floatingIp:FloatingIp",
		"openstack_networking_floatingip_associate_v2": "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
		"openstack_networking_network_v2":              "openstack:networking/network:Network",
		"openstack_networking_port_v2":                 "openstack:networking/port:Port",
		"openstack_networking_router_v2":               "openstack:networking/router:Router",
		"openstack_networking_router_interface_v2":     "openstack:networking/routerInterface:RouterInterface",
		"openstack_networking_secgroup_v2":             "openstack:networking/secGroup:SecGroup",
		"openstack_networking_secgroup_rule_v2":        "openstack:networking/secGroupRule:SecGroupRule",
		"openstack_networking_subnet_v2":               "openstack:networking/subnet:Subnet",
		"openstack_bgpvpn_v2":                          "openstack:bgpvpn/v2:V2",
		"openstack_blockstorage_quotaset_v3":           "openstack:blockstorage/quoteSetV3:QuoteSetV3",
		"openstack_db_instance_v1":                     "openstack:database/instance:Instance",
		"openstack_lb_loadbalancer_v2":                 "openstack:loadbalancer/loadBalancer:LoadBalancer",
		"openstack_lb_l7policy_v2":                     "openstack:loadbalancer/l7PolicyV2:L7PolicyV2",
		"openstack_objectstorage_object_v1":            "openstack:objectstorage/containerObject:ContainerObject",
		"openstack_taas_tap_mirror_v2":                 "openstack:index/taasTapMirrorV2:TaasTapMirrorV2",
		"openstack_vpnaas_ipsec_policy_v2":             "openstack:vpnaas/ipSecPolicy:IpSecPolicy",
	}
	for tf, want := range resources {
		if got := string(resourceToken(tf)); got != want {
			t.Errorf("resource %s: got %s, want %s", tf, got, want)
		}
	}
	dataSources := map[string]string{
		"openstack_dns_zone_v2":            "openstack:dns/getDnsZone:getDnsZone",
		"openstack_identity_auth_scope_v3": "openstack:identity/getAuthScope:getAuthScope",
		"openstack_images_image_v2":        "openstack:images/getImage:getImage",
		"openstack_networking_network_v2":  "openstack:networking/getNetwork:getNetwork",
		"openstack_networking_port_v2":     "openstack:networking/getPort:getPort",
		"openstack_networking_port_ids_v2": "openstack:networking/getPortIds:getPortIds",
		"openstack_networking_router_v2":   "openstack:networking/getRouter:getRouter",
		"openstack_networking_subnet_v2":   "openstack:networking/getSubnet:getSubnet",
		"openstack_compute_instance_v2":    "openstack:compute/getInstanceV2:getInstanceV2",
		"openstack_loadbalancer_flavor_v2": "openstack:loadbalancer/getLbFlavorDeprecated:getLbFlavorDeprecated",
	}
	for tf, want := range dataSources {
		if got := string(dataSourceToken(tf)); got != want {
			t.Errorf("data source %s: got %s, want %s", tf, got, want)
		}
	}
}
