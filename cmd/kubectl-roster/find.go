package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

func (p *plugin) findCommand() *cobra.Command {
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "find TEXT [-A]",
		Short: "List Users whose email, name or a label value contains TEXT",
		Long: "find lists the Users whose email, first name, last name, display name or any label value\n" +
			"contains TEXT, ignoring case, in the columns of `kubectl get users`.",
		Example: "  # Users in the current namespace with \"ada\" in their email, names or labels\n" +
			"  kubectl roster find ada\n\n" +
			"  # Everyone at example.com, in every namespace\n" +
			"  kubectl roster find @example.com -A",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			var opts []client.ListOption
			where := "any namespace"
			if !allNamespaces {
				opts, where = append(opts, client.InNamespace(ns)), "namespace "+ns
			}
			var found []v1alpha1.User
			err = eachUser(cmd.Context(), c, func(u *v1alpha1.User) {
				if matches(u, args[0]) {
					found = append(found, *u)
				}
			}, opts...)
			if err != nil {
				return fmt.Errorf("listing Users: %w", err)
			}
			if len(found) == 0 {
				fmt.Fprintf(p.streams.ErrOut, "No Users match %q in %s.\n", args[0], where)
				return nil
			}
			return printUsers(p.streams.Out, found, allNamespaces, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "search the Users of every namespace")
	return cmd
}

// matches reports whether text occurs, ignoring case, in the User's email,
// first or last name, display name or a label value.
func matches(u *v1alpha1.User, text string) bool {
	text = strings.ToLower(text)
	fields := []string{u.Spec.Email, u.Spec.FirstName, u.Spec.LastName, u.Status.DisplayName}
	for _, v := range u.Labels {
		fields = append(fields, v)
	}
	return slices.ContainsFunc(fields, func(f string) bool { return strings.Contains(strings.ToLower(f), text) })
}

// printUsers writes the Users as `kubectl get users` shows them, from the
// same fields as the User's printer columns.
func printUsers(w io.Writer, users []v1alpha1.User, withNamespace bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
	row := func(namespace string, cells ...string) {
		if withNamespace {
			cells = append([]string{namespace}, cells...)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("NAMESPACE", "NAME", "EMAIL", "FULL NAME", "ROLE", "STATUS", "AGE")
	for _, u := range users {
		row(u.Namespace, u.Name, u.Spec.Email, u.Status.DisplayName, u.Status.Role, string(u.Status.Phase),
			duration.HumanDuration(now.Sub(u.CreationTimestamp.Time)))
	}
	return tw.Flush()
}

// eachUser calls fn with each User the options select, reading them a page
// at a time so that a large cluster's Users are never all held at once. fn
// must not keep the pointer.
func eachUser(ctx context.Context, c client.Reader, fn func(*v1alpha1.User), opts ...client.ListOption) error {
	page := client.ListOptions{Limit: 500}
	page.ApplyOptions(opts)
	for {
		var list v1alpha1.UserList
		if err := c.List(ctx, &list, &page); err != nil {
			return err
		}
		for i := range list.Items {
			fn(&list.Items[i])
		}
		if page.Continue = list.Continue; page.Continue == "" {
			return nil
		}
	}
}
