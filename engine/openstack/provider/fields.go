package provider

import "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

// Property names where the SDK differs from the bridge's default
// (snake_case -> camelCase, list names pluralised).
var resourceFields = map[string]map[string]*tfbridge.SchemaInfo{
	"openstack_networking_subnet_v2": {
		"allocation_pool": {Name: "allocationPools"},
	},
	"openstack_orchestration_stack_v1": {
		"outputs": {Name: "StackOutputs"},
	},
}

var dataSourceFields = map[string]map[string]*tfbridge.SchemaInfo{}
