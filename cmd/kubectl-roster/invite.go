package main

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/naming"
)

type inviteOptions struct {
	role      string
	groups    []string
	firstName string
	lastName  string
	dryRun    bool
	wait      time.Duration
}

func (p *plugin) inviteCommand() *cobra.Command {
	o := inviteOptions{}
	cmd := &cobra.Command{
		Use:   "invite EMAIL... [--role ROLE] [--group GROUP]... [--dry-run]",
		Short: "Create a User for each email address and wait until it is invited",
		Long: "invite creates one User per address, named after the address as imports name them, with\n" +
			"spec.invite true, then waits until each is Invited (or Active), printing one line per User.\n" +
			"An address that another User already holds, in any namespace you may list, is refused with\n" +
			"that User's namespace/name. A bad address never stops the others; the command exits\n" +
			"non-zero when any address failed.",
		Example: "  # Invite two people as Viewers in the eng and ops Groups\n" +
			"  kubectl roster invite ada@example.com grace@example.com --role Viewer --group eng --group ops\n\n" +
			"  # Invite one person with their name, in namespace team-a\n" +
			"  kubectl roster invite ada@example.com --first-name Ada --last-name Lovelace -n team-a\n\n" +
			"  # See what would be created, with the API server's validation, creating nothing\n" +
			"  kubectl roster invite ada@example.com --dry-run\n\n" +
			"  # Create the Users without waiting for the invitations\n" +
			"  kubectl roster invite ada@example.com --wait=0",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return p.runInvite(cmd.Context(), args, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.role, "role", "", "the Users' role (default: the operator's default role)")
	f.StringSliceVar(&o.groups, "group", nil, "a Group the Users belong to (repeat for several)")
	f.StringVar(&o.firstName, "first-name", "", "the person's first name (only with a single address)")
	f.StringVar(&o.lastName, "last-name", "", "the person's last name (only with a single address)")
	f.BoolVar(&o.dryRun, "dry-run", false, "have the API server validate the Users without creating them")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "how long to wait for the Users to be invited; 0 does not wait")
	return cmd
}

func (p *plugin) runInvite(ctx context.Context, args []string, o inviteOptions) error {
	if (o.firstName != "" || o.lastName != "") && len(args) > 1 {
		return errors.New("--first-name and --last-name name one person: give a single address with them")
	}
	slices.Sort(o.groups)
	o.groups = slices.Compact(o.groups)
	c, ns, err := p.client()
	if err != nil {
		return err
	}
	known, err := p.knownUsers(ctx, c, ns)
	if err != nil {
		return err
	}
	failed := 0
	var created []client.ObjectKey
	for _, arg := range args {
		u, err := p.inviteOne(ctx, c, ns, arg, o, known)
		if err != nil {
			fmt.Fprintf(p.streams.ErrOut, "error: %v\n", err)
			failed++
			continue
		}
		created = append(created, client.ObjectKeyFromObject(u))
	}
	if !o.dryRun && o.wait > 0 {
		failed += p.waitForInvites(ctx, c, created, o.wait)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d addresses failed", failed, len(args))
	}
	return nil
}

func (p *plugin) inviteOne(ctx context.Context, c client.Client, ns, arg string, o inviteOptions, known *knownUsers) (*v1alpha1.User, error) {
	email, err := parseEmail(arg)
	if err != nil {
		return nil, err
	}
	if holder, ok := known.holders[naming.NormalizeEmail(email)]; ok {
		return nil, fmt.Errorf("%s is already held by User %s", email, holder)
	}
	name, err := chooseName(email, known.names)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", email, err)
	}
	u := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.UserSpec{
			Email: email, FirstName: o.firstName, LastName: o.lastName,
			Role: o.role, Groups: o.groups, Invite: ptr.To(true),
		},
	}
	var opts []client.CreateOption
	done := "created"
	if o.dryRun {
		opts, done = append(opts, client.DryRunAll), "created (server dry run)"
	}
	if err := c.Create(ctx, u, opts...); err != nil {
		return nil, fmt.Errorf("%s: creating User %s: %w", email, name, err)
	}
	// A later argument with the same address is refused, a dry run included.
	known.add(u)
	fmt.Fprintf(p.streams.Out, "user/%s %s\n", name, done)
	return u, nil
}

// parseEmail accepts a bare address, the form spec.email holds.
func parseEmail(arg string) (string, error) {
	arg = strings.TrimSpace(arg)
	a, err := mail.ParseAddress(arg)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid email address: %w", arg, err)
	}
	if a.Address != arg {
		return "", fmt.Errorf("%q is not a bare email address: give %s alone", arg, a.Address)
	}
	return a.Address, nil
}

// chooseName names a new User as imports do: after its address, with a
// digest suffix when a User with another address holds that name. taken
// holds the names in the namespace; the caller has made sure that no User
// holds this address.
func chooseName(email string, taken map[string]bool) (string, error) {
	for _, name := range []string{naming.UserName(email), naming.UserNameWithSuffix(email)} {
		if !taken[name] {
			return name, nil
		}
	}
	return "", errors.New("both names derived from this address are held by Users with other addresses")
}

// knownUsers is what invite checks an address against: who holds each
// address, and which names the target namespace has taken.
type knownUsers struct {
	ns      string
	holders map[string]string // normalised email -> namespace/name
	names   map[string]bool   // names taken in ns
}

func newKnownUsers(ns string) *knownUsers {
	return &knownUsers{ns: ns, holders: map[string]string{}, names: map[string]bool{}}
}

func (k *knownUsers) add(u *v1alpha1.User) {
	key := naming.NormalizeEmail(u.Spec.Email)
	if _, ok := k.holders[key]; !ok {
		k.holders[key] = u.Namespace + "/" + u.Name
	}
	if u.Namespace == k.ns {
		k.names[u.Name] = true
	}
}

// knownUsers reads the Users of every namespace, or of ns alone when the
// caller may not list them cluster-wide. The operator refuses a second User
// with an address in any case; checking here names the holder up front.
func (p *plugin) knownUsers(ctx context.Context, c client.Reader, ns string) (*knownUsers, error) {
	known := newKnownUsers(ns)
	err := eachUser(ctx, c, known.add)
	if apierrors.IsForbidden(err) {
		fmt.Fprintf(p.streams.ErrOut, "Warning: you may not list Users in all namespaces, so addresses were checked "+
			"in namespace %s only; Roster itself still refuses an address held elsewhere.\n", ns)
		known = newKnownUsers(ns)
		err = eachUser(ctx, c, known.add, client.InNamespace(ns))
	}
	if err != nil {
		return nil, fmt.Errorf("listing Users: %w", err)
	}
	return known, nil
}

// waitForInvites polls the Users until each is invited or stuck, printing
// one line per User as it settles, and returns how many did not get there
// in time.
func (p *plugin) waitForInvites(ctx context.Context, c client.Reader, keys []client.ObjectKey, timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	ticker := time.NewTicker(p.poll)
	defer ticker.Stop()
	failed := 0
	last := map[client.ObjectKey]string{} // what was last seen of each pending User
	for {
		var pending []client.ObjectKey
		for _, key := range keys {
			var u v1alpha1.User
			if err := c.Get(ctx, key, &u); err != nil {
				// Transient or not, the deadline bounds the retries.
				last[key] = fmt.Sprintf("reading the User: %v", err)
				pending = append(pending, key)
				continue
			}
			settled, problem := inviteState(&u)
			switch {
			case !settled:
				last[key] = string(phase(&u))
				if ready := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady); ready != nil {
					last[key] += ": " + ready.Message
				}
				pending = append(pending, key)
			case problem != "":
				fmt.Fprintf(p.streams.Out, "user/%s %s: %s\n", key.Name, phase(&u), problem)
				failed++
			default:
				fmt.Fprintf(p.streams.Out, "user/%s %s\n", key.Name, u.Status.Phase)
			}
		}
		if keys = pending; len(keys) == 0 {
			return failed
		}
		select {
		case <-ctx.Done():
			return failed + len(keys)
		case <-deadline.C:
			for _, key := range keys {
				fmt.Fprintf(p.streams.Out, "user/%s not invited after %s; last seen %s\n", key.Name, timeout, last[key])
			}
			return failed + len(keys)
		case <-ticker.C:
		}
	}
}

// inviteState says whether an invited User has got as far as invite waits
// for: into the store (Invited, or Active already), or stuck until a person
// acts, with the reason as problem. Conditions from an older generation do
// not count.
func inviteState(u *v1alpha1.User) (settled bool, problem string) {
	switch u.Status.Phase {
	case v1alpha1.UserInvited, v1alpha1.UserActive:
		return true, ""
	case v1alpha1.UserInactive:
		return true, "The User is deactivated, so no invitation is sent."
	}
	current := func(typ string) *metav1.Condition {
		c := meta.FindStatusCondition(u.Status.Conditions, typ)
		if c == nil || c.ObservedGeneration != u.Generation {
			return nil
		}
		return c
	}
	if stalled := current(v1alpha1.ConditionStalled); stalled != nil && stalled.Status == metav1.ConditionTrue {
		return true, stalled.Message
	}
	ready := current(v1alpha1.ConditionReady)
	if ready != nil && ready.Status == metav1.ConditionFalse &&
		!meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReconciling) {
		return true, ready.Message
	}
	return false, ""
}

// phase is the User's phase as printed: Pending until the operator says.
func phase(u *v1alpha1.User) v1alpha1.UserPhase {
	if u.Status.Phase == "" {
		return v1alpha1.UserPending
	}
	return u.Status.Phase
}
