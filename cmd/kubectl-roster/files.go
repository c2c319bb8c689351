package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/chunks"
	"roster.dev/roster/internal/importfile"
)

func parseFormat(s string) (importfile.Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return importfile.FormatCSV, nil
	case "xlsx":
		return importfile.FormatXLSX, nil
	}
	return "", fmt.Errorf("--format: %q is not csv or xlsx", s)
}

func (p *plugin) templateCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "template [--format csv|xlsx]",
		Short: "Write an example import file with a header row",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			return importfile.WriteTemplate(p.streams.Out, f)
		},
	}
	cmd.Flags().StringVar(&format, "format", "csv", "csv or xlsx")
	return cmd
}

func (p *plugin) exportCommand() *cobra.Command {
	var format, selector string
	cmd := &cobra.Command{
		Use:   "export [FILE] [--format csv|xlsx] [-l SELECTOR]",
		Short: "Write Users in the import format (import it back with --skip-header)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			c, ns, err := p.client()
			if err != nil {
				return err
			}
			sel := selection{selector: selector, all: selector == ""}
			users, err := sel.users(cmd.Context(), c, ns, nil)
			if err != nil {
				return err
			}
			out := p.streams.Out
			if len(args) == 1 {
				file, err := os.Create(args[0])
				if err != nil {
					return err
				}
				defer file.Close()
				out = file
			}
			if err := writeUsers(out, f, users); err != nil {
				return err
			}
			if len(args) == 1 {
				fmt.Fprintf(p.streams.ErrOut, "Exported %d users to %s\n", len(users), args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "csv", "csv or xlsx")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "export only the Users matching this label selector")
	return cmd
}

// writeUsers writes one add-user row per User, sorted by email, so that
// importing the file creates or leaves unchanged exactly these Users.
func writeUsers(out io.Writer, f importfile.Format, users []v1alpha1.User) error {
	slices.SortFunc(users, func(a, b v1alpha1.User) int { return strings.Compare(a.Spec.Email, b.Spec.Email) })
	w, err := importfile.NewWriter(out, f)
	if err != nil {
		return err
	}
	for _, u := range users {
		s := u.Spec
		row := importfile.Row{
			Action: importfile.ActionAdd, Email: s.Email, FirstName: s.FirstName, LastName: s.LastName,
			Role: s.Role, Groups: s.Groups, Mobile: s.Mobile, TimeZone: s.TimeZone, Country: s.Country, Locale: s.Locale,
		}
		if err := w.Write(row); err != nil {
			return fmt.Errorf("writing user %s: %w", u.Name, err)
		}
	}
	return w.Close()
}

type importOptions struct {
	name            string
	format          string
	skipHeader      bool
	sendInvitations bool
	dryRun          bool
	wait            bool
}

func (p *plugin) importCommand() *cobra.Command {
	o := importOptions{}
	cmd := &cobra.Command{
		Use:   "import FILE [--skip-header] [--send-invitations] [--dry-run]",
		Short: "Add, update and remove Users from a CSV or Excel file",
		Long: "import stores FILE in ConfigMaps, creates a UserImport for it and shows its progress until it\n" +
			"finishes, then the rows that failed. Rows are action,username,firstName,lastName with action\n" +
			"add-user, update or remove-user; with --skip-header further columns are matched by name.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return p.runImport(cmd.Context(), args[0], o)
		},
	}
	cmd.Flags().StringVar(&o.name, "name", "", "the UserImport's name (default import-<time>-<random>)")
	cmd.Flags().StringVar(&o.format, "format", "", "csv or xlsx (default: from the file)")
	cmd.Flags().BoolVar(&o.skipHeader, "skip-header", false, "the first row is a header naming the columns")
	cmd.Flags().BoolVar(&o.sendInvitations, "send-invitations", false, "email an invitation to each user the import adds")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "check the file and report what would change, changing nothing")
	cmd.Flags().BoolVar(&o.wait, "wait", true, "wait for the import to finish, showing progress")
	return cmd
}

func (p *plugin) runImport(ctx context.Context, path string, o importOptions) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var format importfile.Format
	if o.format != "" {
		if format, err = parseFormat(o.format); err != nil {
			return err
		}
	} else if strings.EqualFold(filepath.Ext(path), ".xlsx") {
		format = importfile.FormatXLSX
	}
	c, ns, err := p.client()
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = fmt.Sprintf("import-%s-%04x", time.Now().UTC().Format("20060102-150405"), rand.IntN(1<<16))
	}
	key := "users.csv"
	if format == importfile.FormatXLSX {
		key = "users.xlsx"
	}

	cms, err := chunks.Store(ctx, c, ns, name+"-file", key, data)
	if err != nil {
		return err
	}
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.UserImportSpec{
			Source:          v1alpha1.ImportSource{ConfigMapRef: &v1alpha1.KeyReference{Name: name + "-file", Key: key}},
			Format:          v1alpha1.ImportFormat(format),
			SkipHeader:      o.skipHeader,
			SendInvitations: o.sendInvitations,
			DryRun:          o.dryRun,
		},
	}
	if err := c.Create(ctx, imp); err != nil {
		return fmt.Errorf("creating UserImport %s: %w", name, err)
	}
	// The ConfigMaps go away with the import.
	owner := metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UserImport", Name: imp.Name, UID: imp.UID}
	for _, cm := range cms {
		before := cm.DeepCopy()
		cm.OwnerReferences = append(cm.OwnerReferences, owner)
		if err := c.Patch(ctx, cm, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("setting the owner of ConfigMap %s: %w", cm.Name, err)
		}
	}
	fmt.Fprintf(p.streams.Out, "userimport/%s created (%d bytes in %d ConfigMap(s))\n", name, len(data), len(cms))
	if !o.wait {
		return nil
	}
	done, err := p.waitForImport(ctx, c, client.ObjectKeyFromObject(imp))
	if err != nil {
		return err
	}
	p.printOutcome(done)
	if done.Status.Phase == v1alpha1.ImportFailed {
		return errors.New("the import failed")
	}
	return nil
}

// waitForImport shows a progress bar until the import finishes.
func (p *plugin) waitForImport(ctx context.Context, c client.Client, key client.ObjectKey) (*v1alpha1.UserImport, error) {
	ticker := time.NewTicker(p.poll)
	defer ticker.Stop()
	for {
		var imp v1alpha1.UserImport
		if err := c.Get(ctx, key, &imp); err != nil {
			return nil, fmt.Errorf("reading UserImport %s: %w", key.Name, err)
		}
		rows := imp.Status.Rows
		fmt.Fprintf(p.streams.ErrOut, "\r%s %d/%d rows, %d failed ", progressBar(rows.Processed, rows.Total, 30), rows.Processed, rows.Total, rows.Failed)
		switch imp.Status.Phase {
		case v1alpha1.ImportSucceeded, v1alpha1.ImportPartiallySucceeded, v1alpha1.ImportFailed:
			fmt.Fprintln(p.streams.ErrOut)
			return &imp, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ticker.C:
		}
	}
}

func progressBar(done, total int32, width int) string {
	filled := 0
	if total > 0 {
		filled = int(int64(done) * int64(width) / int64(total))
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

func (p *plugin) printOutcome(imp *v1alpha1.UserImport) {
	rows := imp.Status.Rows
	fmt.Fprintf(p.streams.Out, "%s: %d rows: %d added, %d updated, %d removed, %d unchanged, %d failed\n",
		imp.Status.Phase, rows.Total, rows.Added, rows.Updated, rows.Removed, rows.Unchanged, rows.Failed)
	for _, c := range imp.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady && c.Status != metav1.ConditionTrue && len(imp.Status.Failures) == 0 {
			fmt.Fprintln(p.streams.Out, c.Message)
		}
	}
	if len(imp.Status.Failures) == 0 {
		return
	}
	tw := tabwriter.NewWriter(p.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tEMAIL\tMESSAGE")
	for _, f := range imp.Status.Failures {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", f.Row, f.Email, f.Message)
	}
	_ = tw.Flush()
	if n := imp.Status.OmittedFailures; n > 0 {
		fmt.Fprintf(p.streams.Out, "... and %d more failed rows\n", n)
	}
}
