// Command kubectl-roster is the kubectl plugin for Roster: bulk import and
// export of Users, the example file, inviting people by email address,
// finding Users by text, and bulk actions on Users chosen by name or label
// selector. Install it on the PATH and run `kubectl roster`.
package main

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func main() {
	cmd := NewRootCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
