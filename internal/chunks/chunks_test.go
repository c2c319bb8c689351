package chunks

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"roster.dev/roster/api/v1alpha1"
)

// What Store writes, Load reads back unchanged, however many ConfigMaps it
// takes.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		maps int
	}{
		{"empty", 0, 1},
		{"one chunk", Size, 1},
		{"just over one chunk", Size + 1, 2},
		{"three chunks", 2*Size + 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
			data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16+1)[:tc.size]
			cms, err := Store(t.Context(), c, "ns", "users", "users.csv", data)
			if err != nil {
				t.Fatal(err)
			}
			if len(cms) != tc.maps {
				t.Errorf("Store wrote %d ConfigMaps, want %d", len(cms), tc.maps)
			}
			got, err := Load(t.Context(), c, "ns", "users", "users.csv", int64(tc.size))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("Load returned %d bytes, not the %d stored", len(got), len(data))
			}
		})
	}
}

func TestStoreRefusesTooManyChunks(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
	if _, err := Store(t.Context(), c, "ns", "big", "k", make([]byte, MaxChunks*Size+1)); err == nil {
		t.Fatal("Store accepted a file larger than MaxChunks ConfigMaps")
	}
	var list corev1.ConfigMapList
	if err := c.List(t.Context(), &list); err != nil || len(list.Items) != 0 {
		t.Errorf("Store wrote %d ConfigMaps before refusing (%v)", len(list.Items), err)
	}
}

// A layout a person can get wrong is reported as an Error naming the object.
func TestLoadErrors(t *testing.T) {
	cm := func(name string, ann map[string]string, data map[string]string) client.Object {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: ann}, Data: data}
	}
	for _, tc := range []struct {
		name    string
		objects []client.Object
		want    Error
	}{
		{"missing", nil, Error{Msg: "ConfigMap f not found", Missing: true}},
		{"missing chunk", []client.Object{cm("f", map[string]string{v1alpha1.ChunksAnnotation: "2"}, map[string]string{"k": "a"})},
			Error{Msg: "ConfigMap f-1 not found", Missing: true}},
		{"bad count", []client.Object{cm("f", map[string]string{v1alpha1.ChunksAnnotation: "x"}, map[string]string{"k": "a"})},
			Error{Msg: fmt.Sprintf("annotation %s of ConfigMap f must be a number from 1 to %d", v1alpha1.ChunksAnnotation, MaxChunks)}},
		{"no key", []client.Object{cm("f", nil, map[string]string{"other": "a"})}, Error{Msg: `ConfigMap f has no key "k"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(tc.objects...).Build()
			_, err := Load(t.Context(), c, "ns", "f", "k", 1<<20)
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("Load returned %v, want an *Error", err)
			}
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
