package importfile

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every cell that breaks a rule below contains "secret", so that a message
// quoting any of them is easy to find.
var secretRows = [][]string{
	{"action", "username", "firstName", "lastName", "role", "groups", "mobile", "timeZone", "country", "locale", ""},
	{"add-user", "ok@example.com", "Ok", "Row"},
	{"secret-action", "secret1@example.com", "A", "B"},
	{"add-user", "secret-not-an-email", "A", "B"},
	{"add-user", "", "A", "B"},
	{"add-user", "secret2@example.com", strings.Repeat("Secret", 22), "B"},
	{"add-user", "secret3@example.com", "A", strings.Repeat("Secret", 22)},
	{"add-user", "secret4@example.com", "A", "B", "1secret"},
	{"add-user", "secret5@example.com", "A", "B", "", "Secret-Group"},
	{"add-user", "secret6@example.com", "A", "B", "", "", "secret"},
	{"add-user", "secret7@example.com", "A", "B", "", "", "", "Secret/Zone"},
	{"add-user", "secret8@example.com", "A", "B", "", "", "", "", "secretland"},
	{"add-user", "secret9@example.com", "A", "B", "", "", "", "", "", "secret-locale"},
	{"add-user", "secret10@example.com", "A", "B", "", "", "", "", "", "", "secret-extra"},
	{"update", "secret11@example.com", "", "B"},
}

// TestRedact checks that with Options.Redact no row error quotes a cell or
// carries the row's email, while still naming row, column and reason.
func TestRedact(t *testing.T) {
	want := []string{
		"row 3, column action: not an action; use add-user, remove-user or update",
		"row 4, column username: not a valid email address: one bare address such as jane@example.com, at most 254 characters",
		"row 5, column username: an email address is required",
		"row 6, column firstName: not a valid name: UTF-8 text of at most 128 characters",
		"row 7, column lastName: not a valid name: UTF-8 text of at most 128 characters",
		"row 8, column role: not a valid role name: up to 63 letters, digits, '_', '.' or '-', starting with a letter",
		"row 9, column groups: not a valid list of groups: at most 256 Group names separated by ';', each of lower-case letters, digits, '-' and '.'",
		"row 10, column mobile: not a mobile number in E.164 form such as +4915123456789",
		"row 11, column timeZone: not an IANA time zone name such as Europe/Berlin",
		"row 12, column country: not an ISO 3166-1 alpha-2 country code such as DE",
		"row 13, column locale: not a language tag such as en-GB",
		"row 14, column K: unexpected value in a column without a header name",
		"row 15, column firstName: a first name is required for update",
	}
	for _, f := range []struct {
		name   string
		render func(testing.TB, [][]string) []byte
	}{{"CSV", csvFile}, {"XLSX", xlsxFile}} {
		t.Run(f.name, func(t *testing.T) {
			data := f.render(t, secretRows)
			got := readAll(t, data, Options{SkipHeader: true, Redact: true})
			if got.Fatal != nil {
				t.Fatalf("fatal error: %v", got.Fatal)
			}
			var msgs []string
			for _, e := range got.Errors {
				msgs = append(msgs, e.Error())
				if e.Email != "" {
					t.Errorf("row %d carries the email %q", e.Row, e.Email)
				}
			}
			if diff := cmp.Diff(want, msgs); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			for _, m := range msgs {
				if strings.Contains(strings.ToLower(m), "secret") {
					t.Errorf("%q quotes a cell", m)
				}
			}
			if len(got.Rows) != 1 {
				t.Errorf("read %d valid rows, want 1", len(got.Rows))
			}

			// Without Redact the same file's messages do quote cells, so
			// the check above can tell.
			plain := readAll(t, data, Options{SkipHeader: true})
			quoting := 0
			for _, e := range plain.Errors {
				if strings.Contains(strings.ToLower(e.Error()+e.Email), "secret") {
					quoting++
				}
			}
			if quoting == 0 {
				t.Error("without Redact no message quotes a cell; the test cannot tell")
			}
		})
	}
}

func TestRedactNoHeader(t *testing.T) {
	data := csvFile(t, [][]string{
		{"add-user", "ok@example.com", "Ok", "Row"},
		{"add-user", "secret@example.com", "A", "B", "secret-fifth"},
	})
	got := readAll(t, data, Options{Redact: true})
	want := []*RowError{{Row: 2, Column: "E", Message: "unexpected value: without a header row only action, username, firstName and lastName are read; add a header row naming the column and set spec.skipHeader: true"}}
	if diff := cmp.Diff(want, got.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestRedactHeader(t *testing.T) {
	cases := []struct {
		name   string
		header []string
		want   string
	}{
		{
			name:   "unknown column",
			header: []string{"action", "username", "firstName", "lastName", "Secret Column"},
			want:   "row 1, column E: unknown column name; after lastName the columns can be role, groups, mobile, timeZone, country and locale",
		},
		{
			name:   "a known column in the wrong place",
			header: []string{"action", "username", "Country", "lastName"},
			want:   "row 1, column C: this column is named after another one, where firstName belongs; the first four columns are action, username, firstName and lastName, in that order",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := csvFile(t, [][]string{tc.header, {"add-user", "a@example.com", "A", "B"}})
			got := readAll(t, data, Options{SkipHeader: true, Redact: true})
			if got.Fatal == nil {
				t.Fatal("the header was accepted")
			}
			if diff := cmp.Diff(tc.want, got.Fatal.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}
