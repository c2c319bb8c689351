package importfile

import (
	"encoding/csv"
	"fmt"
	"io"
	"strings"

	"github.com/xuri/excelize/v2"
)

// Writer writes rows in the import format, after a header row naming every
// column, so that an exported file imports back unchanged (with
// spec.skipHeader: true). Row.Number is ignored.
type Writer interface {
	Write(Row) error
	// Close finishes the file; an XLSX workbook is written to the
	// underlying writer only now. It does not close the underlying writer.
	Close() error
}

// NewWriter writes the header row and returns a Writer for the rest.
func NewWriter(w io.Writer, format Format) (Writer, error) {
	var wr Writer
	var err error
	switch format {
	case FormatCSV:
		wr = &csvWriter{w: csv.NewWriter(w)}
	case FormatXLSX:
		wr, err = newXLSXWriter(w)
	default:
		return nil, fmt.Errorf("unknown format %q: use CSV or XLSX", format)
	}
	if err != nil {
		return nil, err
	}
	if err := wr.(cellWriter).writeCells(Header()); err != nil {
		return nil, err
	}
	return wr, nil
}

// cellWriter writes one row of cells as given.
type cellWriter interface {
	writeCells([]string) error
}

// cells lays a row out in the order of Header, escaping cells a
// spreadsheet would run as formulas.
func cells(r Row) []string {
	c := []string{
		string(r.Action), r.Email, r.FirstName, r.LastName, r.Role,
		strings.Join(r.Groups, ";"), r.Mobile, r.TimeZone, r.Country, r.Locale,
	}
	for i := range c {
		c[i] = escape(c[i])
	}
	return c
}

type csvWriter struct {
	w *csv.Writer
}

func (c *csvWriter) writeCells(cells []string) error {
	if err := c.w.Write(cells); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

func (c *csvWriter) Write(r Row) error { return c.writeCells(cells(r)) }

func (c *csvWriter) Close() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("writing CSV: %w", err)
	}
	return nil
}

// xlsxWriter streams rows into a one-sheet workbook. Every cell is written
// as text, so that a spreadsheet does not turn a mobile number into
// 4.91512E+12.
type xlsxWriter struct {
	w    io.Writer
	file *excelize.File
	sw   *excelize.StreamWriter
	row  int
	buf  []any
}

// sheetName is the name of the one sheet the writer produces.
const sheetName = "Users"

func newXLSXWriter(w io.Writer) (*xlsxWriter, error) {
	f := excelize.NewFile()
	if err := f.SetSheetName("Sheet1", sheetName); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("creating the workbook: %w", err)
	}
	sw, err := f.NewStreamWriter(sheetName)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("creating the workbook: %w", err)
	}
	// Wide enough to read emails and time zones without resizing.
	widths := []float64{12, 32, 16, 16, 12, 24, 18, 20, 9, 9}
	for i, width := range widths {
		if err := sw.SetColWidth(i+1, i+1, width); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("creating the workbook: %w", err)
		}
	}
	return &xlsxWriter{w: w, file: f, sw: sw, buf: make([]any, len(fieldNames)-1)}, nil
}

func (x *xlsxWriter) writeCells(cells []string) error {
	x.row++
	for i, c := range cells {
		x.buf[i] = c
	}
	cell, err := excelize.CoordinatesToCellName(1, x.row)
	if err != nil {
		return fmt.Errorf("writing XLSX: %w", err)
	}
	if err := x.sw.SetRow(cell, x.buf); err != nil {
		return fmt.Errorf("writing XLSX row %d: %w", x.row, err)
	}
	return nil
}

func (x *xlsxWriter) Write(r Row) error { return x.writeCells(cells(r)) }

func (x *xlsxWriter) Close() error {
	defer func() { _ = x.file.Close() }()
	if err := x.sw.Flush(); err != nil {
		return fmt.Errorf("writing XLSX: %w", err)
	}
	if err := x.file.Write(x.w); err != nil {
		return fmt.Errorf("writing XLSX: %w", err)
	}
	return nil
}

// TemplateRows are the example rows of WriteTemplate.
var TemplateRows = []Row{
	{Action: ActionAdd, Email: "jane.doe@example.com", FirstName: "Jane", LastName: "Doe", Role: "Admin",
		Groups: []string{"platform-admins", "sre"}, Mobile: "+4915123456789", TimeZone: "Europe/Berlin", Country: "DE", Locale: "de-DE"},
	{Action: ActionAdd, Email: "john.smith@example.com", FirstName: "John", LastName: "Smith", Role: "Member",
		Groups: []string{"developers"}, TimeZone: "America/New_York", Country: "US", Locale: "en-US"},
	{Action: ActionUpdate, Email: "ana.silva@example.com", FirstName: "Ana", LastName: "Silva", Country: "BR", Locale: "pt-BR"},
	{Action: ActionRemove, Email: "former.employee@example.com"},
}

// WriteTemplate writes an example file: the header row and TemplateRows,
// like an admin console's "download example". It imports as it is, with
// spec.skipHeader: true.
func WriteTemplate(w io.Writer, format Format) error {
	wr, err := NewWriter(w, format)
	if err != nil {
		return err
	}
	for _, r := range TemplateRows {
		if err := wr.Write(r); err != nil {
			_ = wr.Close()
			return err
		}
	}
	return wr.Close()
}
