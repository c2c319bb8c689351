package importfile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/xuri/excelize/v2"
)

// exportRows are rows an export might hold, including values that a
// spreadsheet would run as formulas and values that need CSV quoting.
var exportRows = []Row{
	{Action: ActionAdd, Email: "jane@example.com", FirstName: "Jane", LastName: "Doe", Role: "Admin",
		Groups: []string{"sre", "platform-admins"}, Mobile: "+4915123456789", TimeZone: "Europe/Berlin", Country: "DE", Locale: "de-DE"},
	{Action: ActionUpdate, Email: "eve@example.com", FirstName: `=HYPERLINK("http://evil.example","click")`, LastName: "-2+3",
		Mobile: "+14155550100"},
	{Action: ActionAdd, Email: "at@example.com", FirstName: "@SUM(A1)", LastName: "\tTabbed"},
	{Action: ActionAdd, Email: "quote@example.com", FirstName: "'=already quoted", LastName: "O'Brien"},
	{Action: ActionAdd, Email: "comma@example.com", FirstName: `Smith, "JJ"`, LastName: "Line\nBreak", Locale: "en"},
	{Action: ActionAdd, Email: "zoe@example.com", FirstName: "Zoë", LastName: "Łukasz-Ørsted", Country: "PL"},
	{Action: ActionRemove, Email: "gone@example.com"},
}

// TestRoundTrip checks that a file a Writer produces reads back as the
// same rows, for both formats.
func TestRoundTrip(t *testing.T) {
	for _, format := range []Format{FormatCSV, FormatXLSX} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, format)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range exportRows {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, buf.Bytes(), Options{SkipHeader: true})
			want := result{}
			for i, r := range exportRows {
				r.Number = i + 2
				want.Rows = append(want.Rows, r)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("an exported file must import back unchanged (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriterEscapes checks that the file itself carries the protection:
// formula-like cells start with a quote when a spreadsheet opens them.
func TestWriterEscapes(t *testing.T) {
	row := Row{Action: ActionAdd, Email: "eve@example.com", FirstName: "=1+1", LastName: "-1", Mobile: "+4915123456789"}
	want := []string{"add-user", "eve@example.com", "'=1+1", "'-1", "", "", "'+4915123456789", "", "", ""}

	var csvBuf bytes.Buffer
	w, err := NewWriter(&csvBuf, FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(row); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csvBuf.String()), "\n")
	if diff := cmp.Diff([]string{strings.Join(Header(), ","), strings.Join(want, ",")}, lines); diff != "" {
		t.Errorf("CSV (-want +got):\n%s", diff)
	}

	var xlsxBuf bytes.Buffer
	if w, err = NewWriter(&xlsxBuf, FormatXLSX); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(row); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(&xlsxBuf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := f.GetRows(f.GetSheetList()[0])
	if err != nil {
		t.Fatal(err)
	}
	wantCells := [][]string{Header(), want[:7]} // excelize drops trailing empty cells
	if diff := cmp.Diff(wantCells, got); diff != "" {
		t.Errorf("XLSX (-want +got):\n%s", diff)
	}
	if formula, err := f.GetCellFormula(f.GetSheetList()[0], "C2"); err != nil || formula != "" {
		t.Errorf("C2 holds formula %q (%v), want plain text", formula, err)
	}
}

// TestEscape checks the quoting rule on its own, including values that
// already start with quotes.
func TestEscape(t *testing.T) {
	cases := []struct{ value, written string }{
		{"Jane", "Jane"},
		{"", ""},
		{"=1", "'=1"},
		{"+49", "'+49"},
		{"-x", "'-x"},
		{"@x", "'@x"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"'x", "'x"},
		{"'=x", "''=x"},
		{"''+x", "'''+x"},
		{"'", "'"},
		{"a=b", "a=b"},
	}
	for _, tc := range cases {
		if got := escape(tc.value); got != tc.written {
			t.Errorf("escape(%q) = %q, want %q", tc.value, got, tc.written)
		}
		if got := unescape(tc.written); got != tc.value {
			t.Errorf("unescape(%q) = %q, want %q", tc.written, got, tc.value)
		}
	}
}

// TestTemplate checks that the example file imports as it is.
func TestTemplate(t *testing.T) {
	for _, format := range []Format{FormatCSV, FormatXLSX} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTemplate(&buf, format); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, buf.Bytes(), Options{SkipHeader: true})
			want := result{}
			for i, r := range TemplateRows {
				r.Number = i + 2
				want.Rows = append(want.Rows, r)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if without := readAll(t, buf.Bytes(), Options{}); without.Fatal != ErrFirstLineInvalid {
				t.Errorf("without skipHeader the template's header must be refused, got %v", without.Fatal)
			}
		})
	}
	if err := WriteTemplate(&bytes.Buffer{}, "ODS"); err == nil {
		t.Error("WriteTemplate accepted an unknown format")
	}
}
