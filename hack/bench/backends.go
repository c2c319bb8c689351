package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
	"k8s.io/apimachinery/pkg/types"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/store/scim/scimtest"
)

// backend is the store a bench run provisions into, and what the lean
// client does with it.
type backend struct {
	describe string
	// managerArgs are the manager's store flags.
	managerArgs []string
	// floorSteps are what the lean client does per User, in order.
	floorSteps []string
	// noFloor skips the lean client: a rate-limited service's floor is its
	// rate.
	noFloor bool
	// floorWrite, when set, writes the User to the store as a lean client
	// does and returns its store ID; floorRemove takes those writes away
	// again, so that the manager starts on an empty store.
	floorWrite  func(ctx context.Context, u *v1alpha1.User) (string, error)
	floorRemove func(ctx context.Context, o options) error
	// beforeImport and afterImport bracket the measured import.
	beforeImport func(ctx context.Context) error
	afterImport  func(ctx context.Context, took time.Duration) error
	close        func()
}

func openBackend(o options, dir string) (*backend, error) {
	switch o.store {
	case "embedded":
		return &backend{describe: "embedded", floorSteps: []string{"create", "status write"}, close: func() {}}, nil
	case "ldap":
		return openLDAP(o, dir)
	case "scim":
		return openSCIM(o, dir)
	}
	return nil, fmt.Errorf("-store %q: want embedded, ldap or scim", o.store)
}

// openLDAP starts a throwaway slapd, as the LDAP store's tests do, and a
// lean client: one connection per worker, one add per User with the
// attributes Roster writes.
func openLDAP(o options, dir string) (*backend, error) {
	slapdDir := filepath.Join(dir, "slapd")
	if err := os.Mkdir(slapdDir, 0o700); err != nil {
		return nil, err
	}
	srv, err := ldaptest.StartIn(slapdDir)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "ldap.yaml")
	// As many connections as the lean client has workers.
	if err := os.WriteFile(conf, []byte(srv.StoreConfig(fmt.Sprintf("poolSize: %d", o.workers))), 0o600); err != nil {
		srv.Stop()
		return nil, err
	}
	conns := make(chan *ldapv3.Conn, o.workers)
	closeAll := func() {
		for len(conns) > 0 {
			_ = (<-conns).Close()
		}
		srv.Stop()
	}
	for range o.workers {
		conn, err := ldapv3.DialURL(srv.URL)
		if err == nil {
			err = conn.Bind(ldaptest.AdminDN, srv.AdminPassword)
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("lean ldap client: %w", err)
		}
		conns <- conn
	}
	with := func(fn func(*ldapv3.Conn) error) error {
		conn := <-conns
		defer func() { conns <- conn }()
		return fn(conn)
	}
	dn := func(email string) string {
		return "uid=" + ldapv3.EscapeDN(strings.ToLower(email)) + "," + ldaptest.UsersDN
	}
	return &backend{
		describe:    "ldap (slapd " + srv.URL + ")",
		managerArgs: []string{"--store=ldap", "--store-config=" + conf},
		floorSteps:  []string{"create", "ldap add", "status write"},
		floorWrite: func(ctx context.Context, u *v1alpha1.User) (string, error) {
			req := ldapv3.NewAddRequest(dn(u.Spec.Email), nil)
			req.Attribute("objectClass", []string{"inetOrgPerson"})
			req.Attribute("uid", []string{strings.ToLower(u.Spec.Email)})
			req.Attribute("mail", []string{u.Spec.Email})
			req.Attribute("cn", []string{u.Spec.FirstName + " " + u.Spec.LastName})
			req.Attribute("sn", []string{u.Spec.LastName})
			req.Attribute("givenName", []string{u.Spec.FirstName})
			req.Attribute("employeeType", []string{"Member"})
			req.Attribute("employeeNumber", []string{string(u.UID)})
			return req.DN, with(func(c *ldapv3.Conn) error { return c.Add(req) })
		},
		floorRemove: func(ctx context.Context, o options) error {
			return parallel(ctx, o.users, o.workers, func(i int) error {
				return with(func(c *ldapv3.Conn) error {
					return c.Del(ldapv3.NewDelRequest(dn(benchUser("", i).Spec.Email), nil))
				})
			})
		},
		close: closeAll,
	}, nil
}

// floorStoreOnly times the lean client's store writes alone, then takes
// them away again.
func (b *backend) floorStoreOnly(ctx context.Context, o options) error {
	start := time.Now()
	err := parallel(ctx, o.users, o.workers, func(i int) error {
		u := benchUser("", i)
		u.UID = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		_, err := b.floorWrite(ctx, u)
		return err
	})
	took := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Printf("  %-8s%-66s%8.1fs  %6.0f users/s\n", "store", "(lean client: store write per User alone)", took.Seconds(), float64(o.users)/took.Seconds())
	return b.floorRemove(ctx, o)
}

// openSCIM starts the SCIM peer with a rate limit and configures Roster's
// SCIM store with the same one. The peer answers requests beyond its rate
// with 429, so the figures are how much of the rate Roster uses and how
// often it went over.
func openSCIM(o options, dir string) (*backend, error) {
	// The peer's bucket holds two seconds' worth, Roster's one: a request
	// that Roster's limiter let go is answered even when the network
	// delays its predecessors.
	burst := max(1, int(o.scimRate))
	peer, err := scimtest.Launch(scimtest.Options{RateLimit: o.scimRate, RateBurst: 2 * burst}, os.Stderr)
	if err != nil {
		return nil, err
	}
	token := filepath.Join(dir, "scim-token")
	conf := filepath.Join(dir, "scim.yaml")
	cfg := fmt.Sprintf("url: %s\ninsecure: true\ntokenFile: %s\nrateLimit:\n  requestsPerSecond: %g\n  burst: %d\n", peer.URL, token, o.scimRate, burst)
	for path, data := range map[string]string{token: scimtest.Token + "\n", conf: cfg} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			peer.Close()
			return nil, err
		}
	}
	var before scimtest.Stats
	return &backend{
		describe:    fmt.Sprintf("scim (SCIMMY peer at %g requests/s)", o.scimRate),
		managerArgs: []string{"--store=scim", "--store-config=" + conf},
		noFloor:     true,
		beforeImport: func(ctx context.Context) error {
			got, err := peer.Stats(ctx)
			before = got
			return err
		},
		afterImport: func(ctx context.Context, took time.Duration) error {
			after, err := peer.Stats(ctx)
			if err != nil {
				return err
			}
			requests, throttled := after.Requests-before.Requests, after.Throttled-before.Throttled
			used := float64(requests) / took.Seconds()
			fmt.Printf("  %-8s%-66s%8d  (%.1f per User)\n", "scim", "requests during the import", requests, float64(requests)/float64(o.users))
			fmt.Printf("  %-8s%-66s%8.1f / %g = %.0f%%\n", "scim", "request rate / rate limit", used, o.scimRate, 100*used/o.scimRate)
			fmt.Printf("  %-8s%-66s%8d\n", "scim", "answered 429 by the peer", throttled)
			return nil
		},
		close: peer.Close,
	}, nil
}
