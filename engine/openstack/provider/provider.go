// Package provider maps terraform-provider-openstack onto the Pulumi package
// "openstack" whose tokens and property names the PyPI SDK pulumi-openstack
// (5.5.x) sends.
//
// Tokens are computed by rules from the Terraform names (tokens.go), with a
// few explicit exceptions where the published SDK differs from the rules.
// Property names are the bridge's default (snake_case -> camelCase, lists
// pluralised, MaxItems=1 blocks flattened), plus the overrides in fields.go.
package provider

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/terraform-provider-openstack/terraform-provider-openstack/v3/openstack"

	"keepalived-vip/engine/openstack/version"
)

// Provider returns the bridge's description of the OpenStack provider; both
// the provider binary and tfgen (which writes schema.json) use it.
func Provider() tfbridge.ProviderInfo {
	p := shimv2.NewProvider(openstack.Provider())

	prov := tfbridge.ProviderInfo{
		P:                       p,
		Name:                    "openstack",
		Version:                 version.Version,
		Description:             "A Pulumi package for creating and managing OpenStack cloud resources.",
		Keywords:                []string{"pulumi", "openstack"},
		Homepage:                "https://pulumi.io",
		License:                 "Apache-2.0",
		GitHubOrg:               "terraform-provider-openstack",
		TFProviderModuleVersion: "v3",
		Repository:              "https://github.com/pulumi/pulumi-openstack",

		// Provider configuration read from the environment when not set in
		// the stack, as the SDK documents.
		Config: map[string]*tfbridge.SchemaInfo{
			"region":        envDefault("OS_REGION_NAME"),
			"insecure":      envDefault("OS_INSECURE"),
			"endpoint_type": envDefault("OS_ENDPOINT_TYPE"),
			"swauth":        envDefault("OS_SWAUTH"),
			"cloud":         envDefault("OS_CLOUD"),
			"delayed_auth":  envDefault("OS_DELAYED_AUTH"),
			"allow_reauth":  envDefault("OS_ALLOW_REAUTH"),
		},

		Resources:   map[string]*tfbridge.ResourceInfo{},
		DataSources: map[string]*tfbridge.DataSourceInfo{},

		Python: &tfbridge.PythonInfo{RespectSchemaVersion: true},
	}

	p.ResourcesMap().Range(func(tfName string, _ shim.Resource) bool {
		prov.Resources[tfName] = &tfbridge.ResourceInfo{
			Tok:    resourceToken(tfName),
			Fields: resourceFields[tfName],
		}
		return true
	})
	p.DataSourcesMap().Range(func(tfName string, _ shim.Resource) bool {
		prov.DataSources[tfName] = &tfbridge.DataSourceInfo{
			Tok:    dataSourceToken(tfName),
			Fields: dataSourceFields[tfName],
		}
		return true
	})

	applyLegacyTokens(&prov)

	// Resources with a "name" get one generated (name + "-" + random
	// suffix) when the program sets none, like the official provider.
	prov.SetAutonaming(255, "-")

	return prov
}

func envDefault(vars ...string) *tfbridge.SchemaInfo {
	return &tfbridge.SchemaInfo{Default: &tfbridge.DefaultInfo{EnvVars: vars}}
}
