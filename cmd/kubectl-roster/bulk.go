package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// selection is how a bulk command picks Users: names, or a label selector.
type selection struct {
	selector string
	all      bool
}

func (s *selection) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&s.selector, "selector", "l", "", "act on the Users matching this label selector")
	cmd.Flags().BoolVar(&s.all, "all", false, "act on every User in the namespace")
}

// users returns the Users named in args or matched by the selector.
func (s *selection) users(ctx context.Context, c client.Client, ns string, args []string) ([]v1alpha1.User, error) {
	chosen := 0
	for _, set := range []bool{len(args) > 0, s.selector != "", s.all} {
		if set {
			chosen++
		}
	}
	if chosen != 1 {
		return nil, errors.New("name Users, or give exactly one of --selector and --all")
	}
	if len(args) > 0 {
		out := make([]v1alpha1.User, 0, len(args))
		for _, name := range args {
			var u v1alpha1.User
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &u); err != nil {
				return nil, fmt.Errorf("user %s: %w", name, err)
			}
			out = append(out, u)
		}
		return out, nil
	}
	opts := []client.ListOption{client.InNamespace(ns)}
	if s.selector != "" {
		sel, err := labels.Parse(s.selector)
		if err != nil {
			return nil, fmt.Errorf("--selector: %w", err)
		}
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	var list v1alpha1.UserList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing Users: %w", err)
	}
	return list.Items, nil
}

func (p *plugin) setDeactivatedCommand(verb string, deactivated bool) *cobra.Command {
	var sel selection
	cmd := &cobra.Command{
		Use:   verb + " [NAME...] [-l SELECTOR | --all]",
		Short: map[bool]string{true: "Deactivate Users: they can no longer log in", false: "Reactivate deactivated Users"}[deactivated],
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			users, err := sel.users(cmd.Context(), c, ns, args)
			if err != nil {
				return err
			}
			past := verb + "d"
			for i := range users {
				u := &users[i]
				if u.IsDeactivated() == deactivated {
					fmt.Fprintf(p.streams.Out, "user/%s unchanged\n", u.Name)
					continue
				}
				before := u.DeepCopy()
				u.Spec.Deactivated = &deactivated
				if err := c.Patch(cmd.Context(), u, client.MergeFrom(before)); err != nil {
					return fmt.Errorf("user %s: %w", u.Name, err)
				}
				fmt.Fprintf(p.streams.Out, "user/%s %s\n", u.Name, past)
			}
			return nil
		},
	}
	sel.bind(cmd)
	return cmd
}

// annotateCommand sets a request annotation to a new value on each User;
// the controller acts once per value.
func (p *plugin) annotateCommand(verb, annotation, short string) *cobra.Command {
	var sel selection
	cmd := &cobra.Command{
		Use:   verb + " [NAME...] [-l SELECTOR | --all]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			users, err := sel.users(cmd.Context(), c, ns, args)
			if err != nil {
				return err
			}
			value := time.Now().UTC().Format(time.RFC3339Nano)
			for i := range users {
				u := &users[i]
				before := u.DeepCopy()
				if u.Annotations == nil {
					u.Annotations = map[string]string{}
				}
				u.Annotations[annotation] = value
				if err := c.Patch(cmd.Context(), u, client.MergeFrom(before)); err != nil {
					return fmt.Errorf("user %s: %w", u.Name, err)
				}
				fmt.Fprintf(p.streams.Out, "user/%s %s requested\n", u.Name, verb)
			}
			return nil
		},
	}
	sel.bind(cmd)
	return cmd
}
