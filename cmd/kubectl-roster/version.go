package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"roster.dev/roster/api/v1alpha1"
)

// version is the plugin's release, set at build time with
// -ldflags "-X main.version=v0.1.0"; otherwise the module's version, or
// "devel".
var version = ""

// pluginVersion is the version the plugin reports.
func pluginVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

func (p *plugin) versionCommand() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and whether the cluster serves Roster's API",
		Example: `  kubectl roster version
  kubectl roster version --client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := p.streams.Out
			fmt.Fprintf(out, "Client: kubectl-roster %s (%s, %s/%s)\n", pluginVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if clientOnly {
				return nil
			}
			disc, err := p.flags.ToDiscoveryClient()
			if err != nil {
				return fmt.Errorf("connecting to the cluster: %w", err)
			}
			gv := v1alpha1.GroupVersion.String()
			if _, err := disc.ServerResourcesForGroupVersion(gv); err != nil {
				fmt.Fprintf(out, "Server: %s is not served (%v); install Roster's CRDs\n", gv, err)
				return nil
			}
			fmt.Fprintf(out, "Server: %s is served\n", gv)
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print the plugin's version only, without contacting the cluster")
	return cmd
}
