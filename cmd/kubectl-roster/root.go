package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// plugin holds what every subcommand shares: kubectl's connection flags and
// the output streams.
type plugin struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	// poll is how often import progress is read.
	poll time.Duration
}

// NewRootCommand returns `kubectl roster` with its subcommands.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	p := &plugin{flags: genericclioptions.NewConfigFlags(true), streams: streams, poll: 500 * time.Millisecond}
	root := &cobra.Command{
		Use:           "kubectl roster",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl roster"}, // help says "kubectl roster import", not "kubectl import"
		Short:         "Manage Roster users in bulk",
		Long:          "kubectl roster imports and exports Users from CSV or Excel files, invites and finds people, and acts on many Users at once.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	p.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		p.importCommand(),
		p.exportCommand(),
		p.templateCommand(),
		p.inviteCommand(),
		p.findCommand(),
		p.versionCommand(),
		p.setDeactivatedCommand("deactivate", true),
		p.setDeactivatedCommand("reactivate", false),
		p.annotateCommand("reset-password", v1alpha1.ResetPasswordAnnotation, "Email a single-use password reset link to Users"),
		p.annotateCommand("resend-invitation", v1alpha1.ResendInvitationAnnotation, "Send a fresh invitation to Users (the old link stops working)"),
	)
	return root
}

// client connects with kubectl's flags and returns the namespace to use.
func (p *plugin) client() (client.Client, string, error) {
	cfg, err := p.flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := p.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("finding the namespace: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	return c, ns, nil
}
