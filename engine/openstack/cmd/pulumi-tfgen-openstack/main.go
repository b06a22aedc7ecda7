// Command pulumi-tfgen-openstack generates the Pulumi schema (schema.json)
// from the same ProviderInfo the provider binary serves:
//
//	pulumi-tfgen-openstack schema --out DIR
//
// After the bridge's tfgen has written DIR/schema.json, the package version
// (stamped into this binary like into the provider) is recorded in it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"keepalived-vip/engine/openstack/provider"
	"keepalived-vip/engine/openstack/version"
)

func main() {
	tfgen.Main("openstack", version.Version, provider.Provider())

	if len(os.Args) > 1 && os.Args[1] == "schema" && version.Version != "" {
		if err := stampVersion(outDir(os.Args[2:]), version.Version); err != nil {
			fmt.Fprintf(os.Stderr, "pulumi-tfgen-openstack: %v\n", err)
			os.Exit(1)
		}
	}
}

// outDir finds tfgen's --out/-o flag ("." when absent).
func outDir(args []string) string {
	for i, a := range args {
		switch {
		case (a == "--out" || a == "-o") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--out="):
			return strings.TrimPrefix(a, "--out=")
		}
	}
	return "."
}

func stampVersion(dir, v string) error {
	path := filepath.Join(dir, "schema.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	spec["version"], _ = json.Marshal(v)
	out, err := json.MarshalIndent(spec, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}
