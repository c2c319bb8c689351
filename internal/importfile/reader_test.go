package importfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignoreMessage compares row errors by row, column and email; the wording
// is checked in TestRowErrorMessages.
var ignoreMessage = cmpopts.IgnoreFields(RowError{}, "Message")

var header = []string{"action", "username", "firstName", "lastName"}

// TestRead runs each case against the same rows as CSV and as XLSX.
func TestRead(t *testing.T) {
	cases := []struct {
		name       string
		reason     string
		rows       [][]string
		skipHeader bool
		want       result
		wantFatal  error // compared with errors.Is, or by type for *HeaderError
	}{
		{
			name:   "Valid",
			reason: "rows without a header have the four positional columns; remove-user needs no names",
			rows: [][]string{
				{"add-user", "jane@example.com", "Jane", "Doe"},
				{"remove-user", "old@example.com"},
				{"update", "john@example.com", "John", "Smith"},
			},
			want: result{Rows: []Row{
				{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"},
				{Number: 2, Action: ActionRemove, Email: "old@example.com"},
				{Number: 3, Action: ActionUpdate, Email: "john@example.com", FirstName: "John", LastName: "Smith"},
			}},
		},
		{
			name: "HelpCentreExample",
			reason: "the help centre's example: a header row, an add, a remove and a later add for the same email " +
				"with another name; every row is returned in order and the controller lets the later one win",
			skipHeader: true,
			rows: [][]string{
				{"Action", "Username", "First Name", "Last Name"},
				{"add-user", "alice@example.com", "Alice", "Smith"},
				{"remove-user", "bob@example.com"},
				{"add-user", "alice@example.com", "Alicia", "Smith-Jones"},
			},
			want: result{Rows: []Row{
				{Number: 2, Action: ActionAdd, Email: "alice@example.com", FirstName: "Alice", LastName: "Smith"},
				{Number: 3, Action: ActionRemove, Email: "bob@example.com"},
				{Number: 4, Action: ActionAdd, Email: "alice@example.com", FirstName: "Alicia", LastName: "Smith-Jones"},
			}},
		},
		{
			name:       "HeaderMapping",
			reason:     "named columns match case-insensitively and ignoring spaces; groups split on ';' without empties or repeats; a lower-case country is upper-cased",
			skipHeader: true,
			rows: [][]string{
				{"action", "username", "firstName", "lastName", "Role", "GROUPS", "Mobile", "Time Zone", "country", "LOCALE"},
				{"add-user", "jane@example.com", "Jane", "Doe", "Admin", "sre; platform;;sre;", "+4915123456789", "Europe/Berlin", "de", "de-DE"},
				{"update", "john@example.com", "John", "Smith", "", "", "", "", "", ""},
			},
			want: result{Rows: []Row{
				{Number: 2, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe", Role: "Admin",
					Groups: []string{"sre", "platform"}, Mobile: "+4915123456789", TimeZone: "Europe/Berlin", Country: "DE", Locale: "de-DE"},
				{Number: 3, Action: ActionUpdate, Email: "john@example.com", FirstName: "John", LastName: "Smith"},
			}},
		},
		{
			name:       "HeaderSubsetReordered",
			reason:     "named columns may come in any order and any subset",
			skipHeader: true,
			rows: [][]string{
				{"action", "username", "firstName", "lastName", "country", "role"},
				{"add-user", "jane@example.com", "Jane", "Doe", "FR", "Member"},
			},
			want: result{Rows: []Row{
				{Number: 2, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe", Country: "FR", Role: "Member"},
			}},
		},
		{
			name:   "MissingNames",
			reason: "add-user and update need both names; a bad row does not stop the next",
			rows: [][]string{
				{"add-user", "jane@example.com", "Jane", "Doe"},
				{"add-user", "a@example.com", "", "Doe"},
				{"update", "b@example.com", "Bob"},
				{"remove-user", "c@example.com", "", ""},
			},
			want: result{
				Rows: []Row{
					{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"},
					{Number: 4, Action: ActionRemove, Email: "c@example.com"},
				},
				Errors: []*RowError{
					{Row: 2, Column: "firstName", Email: "a@example.com"},
					{Row: 3, Column: "lastName", Email: "b@example.com"},
				},
			},
		},
		{
			name:       "InvalidValues",
			reason:     "each column's value is checked and the error names the row and the column",
			skipHeader: true,
			rows: [][]string{
				{"action", "username", "firstName", "lastName", "role", "groups", "mobile", "timeZone", "country", "locale"},
				{"add-user", "not-an-email", "A", "B"},
				{"add-user", "Jane <jane@example.com>", "A", "B"},
				{"add-user", "c@example.com", "A", "B", "", "", "", "", "XX"},
				{"add-user", "d@example.com", "A", "B", "", "", "4915123456789"},
				{"add-user", "e@example.com", "A", "B", "", "", "", "Mars/Olympus"},
				{"add-user", "f@example.com", "A", "B", "", "", "", "", "", "english"},
				{"add-user", "g@example.com", "A", "B", "1st"},
				{"add-user", "h@example.com", "A", "B", "", "Admins"},
				{"delete", "i@example.com", "A", "B"},
				{"", "j@example.com", "A", "B"},
				{"add-user", "", "A", "B"},
			},
			want: result{Errors: []*RowError{
				{Row: 2, Column: "username", Email: "not-an-email"},
				{Row: 3, Column: "username", Email: "Jane <jane@example.com>"},
				{Row: 4, Column: "country", Email: "c@example.com"},
				{Row: 5, Column: "mobile", Email: "d@example.com"},
				{Row: 6, Column: "timeZone", Email: "e@example.com"},
				{Row: 7, Column: "locale", Email: "f@example.com"},
				{Row: 8, Column: "role", Email: "g@example.com"},
				{Row: 9, Column: "groups", Email: "h@example.com"},
				{Row: 10, Column: "action", Email: "i@example.com"},
				{Row: 11, Column: "action", Email: "j@example.com"},
				{Row: 12, Column: "username"},
			}},
		},
		{
			name:   "ActionCase",
			reason: "actions are matched case-insensitively",
			rows:   [][]string{{"Add-User", "jane@example.com", "Jane", "Doe"}},
			want: result{Rows: []Row{
				{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"},
			}},
		},
		{
			name:      "FirstLineIsHeader",
			reason:    "a header row without skipHeader fails the whole file with the contract's message",
			rows:      [][]string{header, {"add-user", "jane@example.com", "Jane", "Doe"}},
			wantFatal: ErrFirstLineInvalid,
		},
		{
			name:      "FirstLineInvalid",
			reason:    "any invalid first row is treated the same way: it may be a header",
			rows:      [][]string{{"add-user", "jane", "Jane", "Doe"}, {"add-user", "jane@example.com", "Jane", "Doe"}},
			wantFatal: ErrFirstLineInvalid,
		},
		{
			name:      "FirstLineAfterBlankLines",
			reason:    "the first line is the first that is not blank",
			rows:      [][]string{nil, header},
			wantFatal: ErrFirstLineInvalid,
		},
		{
			name:       "UnknownHeaderColumn",
			reason:     "an unknown column name stops the file: its values would otherwise be dropped from every row",
			skipHeader: true,
			rows:       [][]string{{"action", "username", "firstName", "lastName", "phone"}, {"add-user", "jane@example.com", "Jane", "Doe", "1"}},
			wantFatal:  &HeaderError{Row: 1, Column: "E"},
		},
		{
			name:       "RepeatedHeaderColumn",
			reason:     "a column named twice is ambiguous",
			skipHeader: true,
			rows:       [][]string{{"action", "username", "firstName", "lastName", "role", "Role"}},
			wantFatal:  &HeaderError{Row: 1, Column: "F"},
		},
		{
			name:       "MisplacedHeaderColumn",
			reason:     "the first four columns are positional; a header that names them in another order would misread every row",
			skipHeader: true,
			rows:       [][]string{{"username", "action", "firstName", "lastName"}},
			wantFatal:  &HeaderError{Row: 1, Column: "A"},
		},
		{
			name:   "ExtraColumnsWithoutHeader",
			reason: "without a header only four columns are read, so a fifth value is an error naming the column; empty extra cells are fine",
			rows: [][]string{
				{"add-user", "jane@example.com", "Jane", "Doe", "", ""},
				{"add-user", "john@example.com", "John", "Smith", "Admin"},
			},
			want: result{
				Rows:   []Row{{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"}},
				Errors: []*RowError{{Row: 2, Column: "E", Email: "john@example.com"}},
			},
		},
		{
			name:       "ValueUnderUnnamedColumn",
			reason:     "a value in a column whose header cell is empty is not silently dropped",
			skipHeader: true,
			rows: [][]string{
				{"action", "username", "firstName", "lastName", "", "role"},
				{"add-user", "jane@example.com", "Jane", "Doe", "", "Admin"},
				{"add-user", "john@example.com", "John", "Smith", "x"},
			},
			want: result{
				Rows:   []Row{{Number: 2, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe", Role: "Admin"}},
				Errors: []*RowError{{Row: 3, Column: "E", Email: "john@example.com"}},
			},
		},
		{
			name:   "BlankRowsCount",
			reason: "blank rows are skipped but keep their numbers, as a spreadsheet shows them",
			rows: [][]string{
				{"add-user", "jane@example.com", "Jane", "Doe"},
				nil,
				{"", "", "", ""},
				{"remove-user", "old@example.com"},
			},
			want: result{Rows: []Row{
				{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"},
				{Number: 4, Action: ActionRemove, Email: "old@example.com"},
			}},
		},
		{
			name:       "FormulaPrefix",
			reason:     "a quote that protects a formula-like cell is removed; other quotes stay",
			skipHeader: true,
			rows: [][]string{
				{"action", "username", "firstName", "lastName", "mobile"},
				{"add-user", "jane@example.com", "'=Jane", "O'Brien", "'+4915123456789"},
			},
			want: result{Rows: []Row{
				{Number: 2, Action: ActionAdd, Email: "jane@example.com", FirstName: "=Jane", LastName: "O'Brien", Mobile: "+4915123456789"},
			}},
		},
		{
			name:   "DuplicateRows",
			reason: "repeated rows are not an error here; the controller lets the later one win",
			rows: [][]string{
				{"add-user", "jane@example.com", "Jane", "Doe"},
				{"add-user", "jane@example.com", "Jane", "Doe"},
			},
			want: result{Rows: []Row{
				{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"},
				{Number: 2, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"},
			}},
		},
		{
			name:       "OnlyHeader",
			reason:     "a header and nothing else is an empty import",
			skipHeader: true,
			rows:       [][]string{header},
		},
		{
			name:   "Empty",
			reason: "an empty file is an empty import",
		},
	}
	formats := []struct {
		name   string
		format Format
		render func(testing.TB, [][]string) []byte
	}{
		{"CSV", FormatCSV, csvFile},
		{"XLSX", FormatXLSX, xlsxFile},
	}
	for _, tc := range cases {
		for _, f := range formats {
			t.Run(tc.name+"/"+f.name, func(t *testing.T) {
				data := f.render(t, tc.rows)
				if f.format == FormatCSV && len(tc.rows) == 0 {
					data = nil
				}
				got := readAll(t, data, Options{SkipHeader: tc.skipHeader})
				checkFatal(t, tc.reason, got.Fatal, tc.wantFatal)
				got.Fatal = nil
				if diff := cmp.Diff(tc.want, got, ignoreMessage); diff != "" {
					t.Errorf("%s\n(-want +got):\n%s", tc.reason, diff)
				}
			})
		}
	}
}

func checkFatal(t *testing.T, reason string, got, want error) {
	t.Helper()
	var wantHeader *HeaderError
	switch {
	case errors.As(want, &wantHeader):
		var gotHeader *HeaderError
		if !errors.As(got, &gotHeader) || gotHeader.Row != wantHeader.Row || gotHeader.Column != wantHeader.Column {
			t.Errorf("%s\nfatal error = %v, want a header error at row %d, column %s", reason, got, wantHeader.Row, wantHeader.Column)
		}
	case !errors.Is(got, want):
		t.Errorf("%s\nfatal error = %v, want %v", reason, got, want)
	}
}

// TestFirstLineMessage pins the message of the product contract.
func TestFirstLineMessage(t *testing.T) {
	want := "The first line is invalid. If this is a header row, set spec.skipHeader: true."
	if got := ErrFirstLineInvalid.Error(); got != want {
		t.Errorf("ErrFirstLineInvalid = %q, want %q", got, want)
	}
}

// TestRowErrorMessages checks the wording people see for some common mistakes.
func TestRowErrorMessages(t *testing.T) {
	data := csvFile(t, [][]string{
		{"action", "username", "firstName", "lastName", "country", "mobile"},
		{"add-user", "a@example.com", "A", "B", "DE"},
		{"add-user", "b@example.com", "A", "B", "DE"},
		{"add-user", "c@example.com", "A", "B", "DE"},
		{"add-user", "d@example.com", "A", "B", "DE"},
		{"add-user", "e@example.com", "A", "B", "DE"},
		{"add-user", "f@example.com", "A", "B", "XX"},
		{"add-user", "g@example.com", "", "B"},
		{"add", "h@example.com", "A", "B"},
		{"add-user", "i@example.com", "A", "B", "", "4.91512E+12"},
	})
	got := readAll(t, data, Options{SkipHeader: true})
	var msgs []string
	for _, e := range got.Errors {
		msgs = append(msgs, e.Error())
	}
	want := []string{
		`row 7, column country: "XX" is not an ISO 3166-1 alpha-2 country code`,
		`row 8, column firstName: a first name is required for add-user`,
		`row 9, column action: "add" is not an action; use add-user, remove-user or update`,
		`row 10, column mobile: "4.91512E+12" is not a mobile number in E.164 form such as +4915123456789`,
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

// TestReadCSVText covers what only CSV text can express.
func TestReadCSVText(t *testing.T) {
	jane := Row{Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"}
	at := func(n int, r Row) Row { r.Number = n; return r }
	cases := []struct {
		name       string
		reason     string
		text       string
		skipHeader bool
		want       result
	}{
		{
			name:   "BOM",
			reason: "Excel's CSV UTF-8 starts with a byte order mark, which is not part of the first cell",
			text:   "\ufeffadd-user,jane@example.com,Jane,Doe\n",
			want:   result{Rows: []Row{at(1, jane)}},
		},
		{
			name:       "BOMHeader",
			reason:     "the same with a header row",
			text:       "\ufeffaction,username,firstName,lastName,country\r\nadd-user,jane@example.com,Jane,Doe,DE\r\n",
			skipHeader: true,
			want:       result{Rows: []Row{{Number: 2, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe", Country: "DE"}}},
		},
		{
			name:   "CRLF",
			reason: "Windows line endings",
			text:   "add-user,jane@example.com,Jane,Doe\r\n\r\nadd-user,jane@example.com,Jane,Doe\r\n",
			want:   result{Rows: []Row{at(1, jane), at(3, jane)}},
		},
		{
			name:   "NoFinalNewline",
			reason: "the last line need not end with a newline",
			text:   "add-user,jane@example.com,Jane,Doe",
			want:   result{Rows: []Row{at(1, jane)}},
		},
		{
			name:   "SpacesAroundCells",
			reason: "spaces around cells are ignored, also before a quoted cell",
			text:   "  add-user , jane@example.com ,  \"Jane\",Doe  \n",
			want:   result{Rows: []Row{at(1, jane)}},
		},
		{
			name:   "QuotedCommasAndNewlines",
			reason: "quoted cells hold commas, quotes and line breaks; a record over several lines is one spreadsheet row",
			text: "add-user,jane@example.com,\"Jane, \"\"JD\"\"\",\"Doe\nSmith\"\r\n" +
				"\n" +
				"add-user,jane@example.com,Jane,Doe\n",
			want: result{Rows: []Row{
				{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: `Jane, "JD"`, LastName: "Doe\nSmith"},
				at(3, jane),
			}},
		},
		{
			name:   "BareQuote",
			reason: "a row that is not valid CSV is a row error and reading goes on",
			text:   "add-user,jane@example.com,Jane,Doe\nadd-user,jo\"hn@example.com,John,Smith\nadd-user,jane@example.com,Jane,Doe\n",
			want: result{
				Rows:   []Row{at(1, jane), at(3, jane)},
				Errors: []*RowError{{Row: 2}},
			},
		},
		{
			name:   "Latin1",
			reason: "a file saved in a legacy encoding is caught at the cell, not stored as replacement characters",
			text:   "add-user,jane@example.com,Jane,Doe\nadd-user,zoe@example.com,Zo\xeb,Doe\n",
			want: result{
				Rows:   []Row{at(1, jane)},
				Errors: []*RowError{{Row: 2, Column: "firstName", Email: "zoe@example.com"}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, []byte(tc.text), Options{SkipHeader: tc.skipHeader})
			if got.Fatal != nil {
				t.Fatalf("%s: fatal error %v", tc.reason, got.Fatal)
			}
			if diff := cmp.Diff(tc.want, got, ignoreMessage); diff != "" {
				t.Errorf("%s\n(-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

// TestFiles covers detection, compression and files refused as a whole.
func TestFiles(t *testing.T) {
	plain := csvFile(t, [][]string{{"add-user", "jane@example.com", "Jane", "Doe"}})
	jane := []Row{{Number: 1, Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe"}}
	bomb := gzipped(t, []byte(strings.Repeat("remove-user,a@example.com\n", 100000)))
	truncatedGzip := gzipped(t, []byte(strings.Repeat("remove-user,a@example.com\n", 1000)))
	truncatedGzip = truncatedGzip[:len(truncatedGzip)/2]
	workbook := xlsxFile(t, [][]string{{"add-user", "jane@example.com", "Jane", "Doe"}})

	cases := []struct {
		name      string
		reason    string
		data      []byte
		opts      Options
		want      []Row
		wantFatal bool
		tooLarge  bool
	}{
		{name: "DetectCSV", reason: "text is CSV", data: plain, want: jane},
		{name: "DetectGzip", reason: "a gzip signature means compressed CSV", data: gzipped(t, plain), want: jane},
		{name: "DetectXLSX", reason: "a zip signature means XLSX", data: workbook, want: jane},
		{name: "ExplicitCSVGzip", reason: "CSV may be compressed", data: gzipped(t, plain), opts: Options{Format: FormatCSV}, want: jane},
		{name: "ExplicitXLSX", reason: "the format may be given", data: workbook, opts: Options{Format: FormatXLSX}, want: jane},
		{name: "XLSXNotZip", reason: "a workbook is a zip archive", data: plain, opts: Options{Format: FormatXLSX}, wantFatal: true},
		{name: "CSVIsZip", reason: "a workbook declared as CSV would read as garbage", data: workbook, opts: Options{Format: FormatCSV}, wantFatal: true},
		{name: "UnknownFormat", reason: "only CSV and XLSX exist", data: plain, opts: Options{Format: "ODS"}, wantFatal: true},
		{name: "LegacyXLS", reason: "an OLE compound file is an .xls or an encrypted workbook", data: append(append([]byte{}, oleMagic...), make([]byte, 512)...), wantFatal: true},
		{name: "UTF16", reason: "Excel's Unicode Text is UTF-16", data: []byte("\xff\xfea\x00d\x00d\x00"), wantFatal: true},
		{name: "Oversized", reason: "the source is over MaxBytes", data: plain, opts: Options{MaxBytes: 10}, wantFatal: true, tooLarge: true},
		{name: "GzipBomb", reason: "a small gzip file that unpacks past MaxBytes", data: bomb, opts: Options{MaxBytes: 1 << 20}, wantFatal: true, tooLarge: true},
		{name: "TruncatedGzip", reason: "a gzip stream cut short is corrupt, not a shorter file", data: truncatedGzip, wantFatal: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, tc.data, tc.opts)
			if (got.Fatal != nil) != tc.wantFatal {
				t.Fatalf("%s: fatal error = %v, want one: %v", tc.reason, got.Fatal, tc.wantFatal)
			}
			if tooLarge := errors.Is(got.Fatal, ErrTooLarge); tooLarge != tc.tooLarge {
				t.Errorf("%s: errors.Is(%v, ErrTooLarge) = %v, want %v", tc.reason, got.Fatal, tooLarge, tc.tooLarge)
			}
			if tc.wantFatal {
				t.Logf("%s: %v", tc.name, got.Fatal)
				return
			}
			if diff := cmp.Diff(tc.want, got.Rows); diff != "" {
				t.Errorf("%s\n(-want +got):\n%s", tc.reason, diff)
			}
		})
	}
}

func TestColumnLetter(t *testing.T) {
	for i, want := range map[int]string{0: "A", 4: "E", 25: "Z", 26: "AA", 51: "AZ", 52: "BA", 701: "ZZ", 702: "AAA"} {
		if got := columnLetter(i); got != want {
			t.Errorf("columnLetter(%d) = %q, want %q", i, got, want)
		}
	}
}
