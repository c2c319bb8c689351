package importfile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/xuri/excelize/v2"
)

// TestXLSXCells checks that cells holding numbers and dates are read as
// the text a spreadsheet shows, never in a float's exponent form.
func TestXLSXCells(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	const sheet = "Sheet1"
	set := func(cell string, v any) {
		t.Helper()
		if err := f.SetCellValue(sheet, cell, v); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range []string{"action", "username", "firstName", "lastName", "mobile"} {
		cell, _ := excelize.CoordinatesToCellName(i+1, 1)
		set(cell, h)
	}
	// Row 2: a mobile typed as a number keeps its digits (and is refused
	// for its missing +, with the digits in the message).
	set("A2", "add-user")
	set("B2", "a@example.com")
	set("C2", "Ann")
	set("D2", "Lee")
	set("E2", 4915123456789)
	// Row 3: a mobile number formatted to show its + reads as shown; a
	// number and a date as names read as shown.
	set("A3", "add-user")
	set("B3", "b@example.com")
	set("C3", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	set("D3", 42)
	set("E3", 4915123456789)
	plus := `"+"0`
	style, err := f.NewStyle(&excelize.Style{CustomNumFmt: &plus})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetCellStyle(sheet, "E3", "E3", style); err != nil {
		t.Fatal(err)
	}
	shownDate, err := f.GetCellValue(sheet, "C3")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}

	got := readAll(t, buf.Bytes(), Options{SkipHeader: true})
	want := result{
		Rows: []Row{{Number: 3, Action: ActionAdd, Email: "b@example.com", FirstName: shownDate, LastName: "42", Mobile: "+4915123456789"}},
		Errors: []*RowError{{Row: 2, Column: "mobile", Email: "a@example.com",
			Message: `"4915123456789" is not a mobile number in E.164 form such as +4915123456789`}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if shownDate == "" || strings.Contains(shownDate, "E+") {
		t.Errorf("date cell shown as %q", shownDate)
	}
}

// TestXLSXFirstSheet checks that the first sheet in tab order is read,
// whatever it is called.
func TestXLSXFirstSheet(t *testing.T) {
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", "People"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewSheet("Notes"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetSheetRow("People", "A1", &[]any{"remove-user", "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetSheetRow("Notes", "A1", &[]any{"not", "rows"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, buf.Bytes(), Options{})
	want := result{Rows: []Row{{Number: 1, Action: ActionRemove, Email: "a@example.com"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// rezip rewrites a zip archive part by part. edit returns the part's new
// content and header; the header's sizes and checksum are taken as given
// when raw is true, so tests can make archives that lie.
type part struct {
	name    string
	content []byte
	crc     *uint32 // nil: the real checksum
	size    *uint64 // nil: the real uncompressed size
}

func rezip(t testing.TB, data []byte, edit func(*part)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		p := part{name: f.Name, content: content}
		edit(&p)
		var compressed bytes.Buffer
		fw, _ := flate.NewWriter(&compressed, flate.BestCompression)
		if _, err := fw.Write(p.content); err != nil {
			t.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		h := &zip.FileHeader{Name: p.name, Method: zip.Deflate,
			CRC32: crc32.ChecksumIEEE(p.content), CompressedSize64: uint64(compressed.Len()), UncompressedSize64: uint64(len(p.content))}
		if p.crc != nil {
			h.CRC32 = *p.crc
		}
		if p.size != nil {
			h.UncompressedSize64 = *p.size
		}
		w, err := zw.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(compressed.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func isSheet(name string) bool { return strings.HasPrefix(name, "xl/worksheets/") }

// TestXLSXRefused checks that bombs and corrupt workbooks are refused as a
// whole, with an error, before any row is read.
func TestXLSXRefused(t *testing.T) {
	good := xlsxFile(t, [][]string{{"add-user", "jane@example.com", "Jane", "Doe"}})
	const limit = 1 << 20
	// A sheet padded with 16 MiB of spaces compresses to a few KiB.
	bomb := rezip(t, good, func(p *part) {
		if isSheet(p.name) {
			i := bytes.LastIndex(p.content, []byte("</worksheet>"))
			p.content = append(append(append([]byte{}, p.content[:i]...), bytes.Repeat([]byte(" "), 16<<20)...), p.content[i:]...)
		}
	})
	// The same, declaring a small size: excelize alone would trust it.
	small := uint64(100)
	lyingBomb := rezip(t, bomb, func(p *part) {
		if isSheet(p.name) {
			p.size = &small
		}
	})
	wrong := uint32(1)
	badChecksum := rezip(t, good, func(p *part) {
		if isSheet(p.name) {
			p.crc = &wrong
		}
	})
	cutShort := rezip(t, good, func(p *part) {
		if isSheet(p.name) {
			p.content = p.content[:len(p.content)-40]
		}
	})
	notWorkbook := rezip(t, good, func(p *part) {
		if p.name == "[Content_Types].xml" {
			p.name = "readme.txt"
		}
	})
	garbage := append([]byte("PK\x03\x04"), bytes.Repeat([]byte{0x42}, 300)...)

	cases := []struct {
		name     string
		reason   string
		data     []byte
		tooLarge bool
	}{
		{"ZipBomb", "a small workbook whose sheet unpacks past MaxBytes", bomb, true},
		{"LyingZipBomb", "the same with a sheet that declares a small size", lyingBomb, false},
		{"Checksum", "a part that fails its checksum is corrupt", badChecksum, false},
		{"CutShort", "a worksheet cut short would import part of the rows as if they were all", cutShort, false},
		{"NotWorkbook", "a zip archive without the package's content types is not a workbook", notWorkbook, false},
		{"Truncated", "a workbook cut in half has no central directory", good[:len(good)/2], false},
		{"Garbage", "a zip signature followed by garbage", garbage, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.data), int64(len(tc.data)), Options{MaxBytes: limit})
			if err == nil {
				t.Fatalf("%s: NewReader accepted the file", tc.reason)
			}
			if got := errors.Is(err, ErrTooLarge); got != tc.tooLarge {
				t.Errorf("%s: errors.Is(%v, ErrTooLarge) = %v, want %v", tc.reason, err, got, tc.tooLarge)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
	if got := readAll(t, good, Options{MaxBytes: limit}); got.Fatal != nil || len(got.Rows) != 1 {
		t.Errorf("the unedited workbook: %+v", got)
	}
}
