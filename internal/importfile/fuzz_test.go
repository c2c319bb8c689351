package importfile

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzLimit keeps fuzzed inputs from unpacking into large allocations.
const fuzzLimit = 1 << 20

var csvSeeds = []string{
	"",
	"add-user,jane@example.com,Jane,Doe\nremove-user,old@example.com\nupdate,john@example.com,John,Smith\n",
	"Action,Username,First Name,Last Name\nadd-user,alice@example.com,Alice,Smith\nremove-user,bob@example.com\nadd-user,alice@example.com,Alicia,Smith-Jones\n",
	"action,username,firstName,lastName,role,groups,mobile,timeZone,country,locale\r\n" +
		"add-user,jane@example.com,Jane,Doe,Admin,sre;platform,'+4915123456789,Europe/Berlin,DE,de-DE\r\n",
	"\ufeffadd-user,jane@example.com,\"Doe, \"\"J\"\"\",\"multi\nline\"\n\n,,,\n",
	"add-user,jo\"hn@example.com,John,Smith\n\"unterminated,x\n",
	"action,username,firstName,lastName,phone\n",
	"add-user,a@example.com,A,B,extra\n",
	"\xff\xfea\x00",
}

// FuzzReadCSV checks that no input makes the reader panic or loop, that
// row numbers only go up, and that every row it accepts survives a trip
// through the writer.
func FuzzReadCSV(f *testing.F) {
	for _, s := range csvSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Add(gzipped(f, []byte(csvSeeds[2])), true)
	f.Fuzz(func(t *testing.T, data []byte, skipHeader bool) {
		rows := checkReader(t, data, Options{SkipHeader: skipHeader, MaxBytes: fuzzLimit})
		if len(rows) == 0 {
			return
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, FormatCSV)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		again := checkReader(t, buf.Bytes(), Options{SkipHeader: true, MaxBytes: 4 * fuzzLimit})
		for i := range rows {
			rows[i].Number = i + 2
		}
		if diff := cmp.Diff(rows, again); diff != "" {
			t.Errorf("accepted rows changed through the writer (-read +re-read):\n%s", diff)
		}
	})
}

// FuzzReadXLSX feeds the reader whole files and, to get past the zip
// checksums that stop most mutations, worksheet XML packed into an
// otherwise valid workbook.
func FuzzReadXLSX(f *testing.F) {
	base := xlsxFile(f, [][]string{{"add-user", "jane@example.com", "Jane", "Doe"}})
	var sheet []byte
	forEachPart(f, base, func(name string, content []byte) {
		if isSheet(name) {
			sheet = content
		}
	})
	var tmpl bytes.Buffer
	if err := WriteTemplate(&tmpl, FormatXLSX); err != nil {
		f.Fatal(err)
	}
	f.Add(base, false)
	f.Add(tmpl.Bytes(), false)
	f.Add(sheet, true)
	f.Add([]byte(`<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`+
		`<row r="3"><c r="A3" t="inlineStr"><is><t>remove-user</t></is></c><c r="B3" t="s"><v>99</v></c></row>`+
		`<row r="2"><c r="XFE2"><v>1e400</v></c></row><row r="1048577"/></sheetData></worksheet>`), true)
	f.Add([]byte("<worksheet><sheetData><row><c t=\"d\"><v>2024-13-45T99:99:99Z</v></c><c t=\"b\"><v>1</v></c></row></sheetData></worksheet>"), true)
	f.Fuzz(func(t *testing.T, data []byte, asSheet bool) {
		if asSheet {
			data = withSheet(t, base, data)
		}
		checkReader(t, data, Options{Format: FormatXLSX, MaxBytes: fuzzLimit})
		checkReader(t, data, Options{Format: FormatXLSX, MaxBytes: fuzzLimit, SkipHeader: true})
	})
}

// withSheet returns the workbook with its worksheet replaced, copying the
// other parts as they are compressed: much faster than rezip.
func withSheet(t *testing.T, workbook, sheet []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(workbook), int64(len(workbook)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		if !isSheet(f.Name) {
			if err := zw.Copy(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(sheet); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// checkReader reads a file to its end and checks the reader's promises.
func checkReader(t *testing.T, data []byte, opts Options) []Row {
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return nil
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var rows []Row
	last := 0
	// Each row takes at least a byte of the (unpacked) file.
	most := len(data) + int(opts.MaxBytes) + 2
	for calls := 1; ; calls++ {
		if calls > most {
			t.Fatalf("more rows than %d bytes of input allow", most)
		}
		row, err := r.Next()
		var rowErr *RowError
		var headerErr *HeaderError
		switch {
		case err == nil:
			if row.Number <= last {
				t.Fatalf("row %d after row %d", row.Number, last)
			}
			last = row.Number
			rows = append(rows, row)
		case errors.As(err, &rowErr):
			if rowErr.Row <= last {
				t.Fatalf("error for row %d after row %d", rowErr.Row, last)
			}
			last = rowErr.Row
		case errors.Is(err, io.EOF):
			return rows
		case errors.Is(err, ErrFirstLineInvalid), errors.As(err, &headerErr):
			if calls != 1 {
				t.Fatalf("%v from call %d of Next, want it only from the first", err, calls)
			}
			return nil
		default:
			return nil
		}
	}
}
