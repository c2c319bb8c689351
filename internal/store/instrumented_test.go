package store

import (
	"context"
	"reflect"
	"slices"
	"testing"
)

// nopStore answers every call with zero values.
type nopStore struct{}

func (nopStore) Kind() string                                          { return "nop" }
func (nopStore) Capabilities() Capabilities                            { return Capabilities{} }
func (nopStore) GetUser(context.Context, string) (User, error)         { return User{}, nil }
func (nopStore) FindUserByEmail(context.Context, string) (User, error) { return User{}, nil }
func (nopStore) CreateUser(context.Context, User) (User, error)        { return User{}, nil }
func (nopStore) UpdateUser(context.Context, string, UserUpdate) (User, error) {
	return User{}, nil
}
func (nopStore) DeleteUser(context.Context, string) error               { return nil }
func (nopStore) SetPassword(context.Context, string, string) error      { return nil }
func (nopStore) ListUsers(context.Context, func([]User) error) error    { return nil }
func (nopStore) GetGroup(context.Context, string) (Group, error)        { return Group{}, nil }
func (nopStore) FindGroupByName(context.Context, string) (Group, error) { return Group{}, nil }
func (nopStore) CreateGroup(context.Context, Group, []string) (Group, error) {
	return Group{}, nil
}
func (nopStore) UpdateGroup(context.Context, string, GroupUpdate) (Group, error) {
	return Group{}, nil
}
func (nopStore) ListGroupMembers(context.Context, string) ([]string, error)   { return nil, nil }
func (nopStore) UpdateGroupMembers(context.Context, string, MemberDiff) error { return nil }
func (nopStore) DeleteGroup(context.Context, string) error                    { return nil }
func (nopStore) Close() error                                                 { return nil }

// Every store operation must be counted under its own name: a method the
// decorator forgot would reach the backend unmetered and unlimited through
// the embedded interface.
func TestInstrumentCountsEveryOperation(t *testing.T) {
	m := NewMetrics(nil)
	s := reflect.ValueOf(Instrument("nop", nopStore{}, m, nil))
	port := reflect.TypeFor[Store]()
	var ops []string
	for i := range port.NumMethod() {
		name := port.Method(i).Name
		if name == "Kind" || name == "Capabilities" || name == "Close" {
			continue
		}
		ops = append(ops, name)
		fn := s.MethodByName(name)
		args := make([]reflect.Value, fn.Type().NumIn())
		args[0] = reflect.ValueOf(context.Background())
		for j := 1; j < len(args); j++ {
			args[j] = reflect.Zero(fn.Type().In(j))
		}
		fn.Call(args)
		if got := m.Calls("nop", name); got != 1 {
			t.Errorf("%s: counted %v calls, want 1", name, got)
		}
	}
	for _, op := range WriteOperations {
		if !slices.Contains(ops, op) {
			t.Errorf("WriteOperations names %q, which is not a Store method", op)
		}
	}
}
