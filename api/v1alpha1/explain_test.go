package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Every field of every kind has the text kubectl explain shows: the
// generated CRDs carry a description for each property.
func TestEveryFieldIsExplained(t *testing.T) {
	files, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("found CRDs %v (%v); want one per kind", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range crd.Spec.Versions {
			var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
			walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
				for name, p := range s.Properties {
					field := path + "." + name
					// apiVersion, kind and metadata are explained by
					// Kubernetes itself.
					if strings.Count(field, ".") > 1 && strings.TrimSpace(p.Description) == "" {
						t.Errorf("kubectl explain %s has no text", strings.ToLower(field))
					}
					walk(field, &p)
				}
				if s.Items != nil && s.Items.Schema != nil {
					walk(path, s.Items.Schema)
				}
				if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
					walk(path, s.AdditionalProperties.Schema)
				}
			}
			walk(crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema)
		}
	}
}
