package importfile

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/xuri/excelize/v2"
)

// result is everything a Reader produced for a file.
type result struct {
	Rows   []Row
	Errors []*RowError
	Fatal  error
}

// readAll reads a file to the end, or to its first fatal error.
func readAll(t testing.TB, data []byte, opts Options) result {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return result{Fatal: err}
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	var res result
	for {
		row, err := r.Next()
		var rowErr *RowError
		switch {
		case err == nil:
			res.Rows = append(res.Rows, row)
		case errors.Is(err, io.EOF):
			return res
		case errors.As(err, &rowErr):
			res.Errors = append(res.Errors, rowErr)
		default:
			res.Fatal = err
			if _, again := r.Next(); again != err {
				t.Errorf("Next after the fatal error %v returned %v, want the same error", err, again)
			}
			return res
		}
	}
}

// csvFile renders rows of cells as CSV; a nil row is a blank line.
func csvFile(t testing.TB, rows [][]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, r := range rows {
		if r == nil {
			w.Flush()
			buf.WriteString("\n")
			continue
		}
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return buf.Bytes()
}

// xlsxFile renders rows of cells as the first sheet of a workbook, the way
// a person typing into Excel would: cells that look like numbers become
// numbers, other cells shared strings. A nil row is an empty row.
func xlsxFile(t testing.TB, rows [][]string) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	for i, r := range rows {
		for j, v := range r {
			cell, err := excelize.CoordinatesToCellName(j+1, i+1)
			if err != nil {
				t.Fatal(err)
			}
			if n, perr := strconv.ParseInt(v, 10, 64); perr == nil && v[0] != '+' && v[0] != '-' {
				err = f.SetCellValue("Sheet1", cell, n)
			} else {
				err = f.SetCellStr("Sheet1", cell, v)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// forEachPart calls fn with each part of a zip archive.
func forEachPart(t testing.TB, data []byte, fn func(name string, content []byte)) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		fn(f.Name, content)
	}
}
