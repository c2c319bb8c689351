package main

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestVersionAndCompletion(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	out, _, err := roster(t, ns, "version")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("Client: kubectl-roster "))
	g.Expect(out).To(ContainSubstring("Server: iam.roster.dev/v1alpha1 is served"))

	out, _, err = roster(t, ns, "version", "--client")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Count(out, "\n")).To(Equal(1), "the client line only:\n%s", out)

	// kubectl completes a plugin's arguments through kubectl_complete-roster
	// (hack/kubectl_complete-roster), which asks the plugin's __complete.
	out, _, err = roster(t, ns, "__complete", "inv")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("invite"))
	g.Expect(out).NotTo(ContainSubstring("import"))
}
