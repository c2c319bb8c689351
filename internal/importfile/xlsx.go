package importfile

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xuri/excelize/v2"
)

// xmlInMemoryLimit is the largest worksheet or shared-string table that
// excelize keeps in memory; larger ones are unpacked to a temporary file and
// streamed from there, which keeps memory flat as workbooks grow.
const xmlInMemoryLimit = 4 << 20

// xlsxSource reads the first sheet of a workbook with excelize's streaming
// Rows iterator.
type xlsxSource struct {
	file *excelize.File
	rows *excelize.Rows
	row  int
	// redact keeps excelize's errors, which may quote the sheet, out of
	// row errors.
	redact bool
}

func newXLSXSource(src io.ReaderAt, size, limit int64, tempDir string, redact bool) (s *xlsxSource, err error) {
	if err := checkWorkbook(src, size, limit); err != nil {
		return nil, err
	}
	defer recoverCorrupt(&err)
	// OpenReader copies the compressed file once while it opens it (its API
	// takes an io.Reader); the copy is garbage once the parts are unpacked.
	f, err := excelize.OpenReader(io.NewSectionReader(src, 0, size), excelize.Options{
		UnzipSizeLimit:    limit,
		UnzipXMLSizeLimit: min(limit, xmlInMemoryLimit),
		TmpDir:            tempDir,
	})
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("the workbook cannot be read: %w", err)
	}
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		_ = f.Close()
		return nil, errors.New("the workbook has no sheets")
	}
	rows, err := f.Rows(sheets[0])
	if err != nil {
		_ = f.Close()
		if redact { // the sheet's name is the file's content
			return nil, errors.New("the workbook's first sheet cannot be read")
		}
		return nil, fmt.Errorf("the workbook's first sheet %q cannot be read: %w", sheets[0], err)
	}
	return &xlsxSource{file: f, rows: rows, redact: redact}, nil
}

func (s *xlsxSource) next() (n int, cells []string, err error) {
	defer recoverCorrupt(&err)
	// Each call to Rows.Next is one row as the spreadsheet shows it, empty
	// rows between the stored ones included.
	for s.rows.Next() {
		s.row++
		cells, err := s.rows.Columns()
		if err != nil {
			if s.redact {
				return s.row, nil, &RowError{Row: s.row, Message: "the row cannot be read"}
			}
			return s.row, nil, &RowError{Row: s.row, Message: fmt.Sprintf("the row cannot be read: %v", err)}
		}
		if blank(cells) {
			continue
		}
		return s.row, cells, nil
	}
	if err := s.rows.Error(); err != nil {
		if s.redact { // an XML error can quote the sheet's text
			return 0, nil, errors.New("the workbook's first sheet cannot be read: its XML is not well-formed")
		}
		return 0, nil, fmt.Errorf("reading the workbook's first sheet: %w", err)
	}
	return 0, nil, io.EOF
}

func (s *xlsxSource) close() error {
	// Rows.Close answers the iteration's error again (next has returned
	// it already) or that of closing a read-only temporary file; what
	// matters is that File.Close removes the temporary files.
	_ = s.rows.Close()
	return s.file.Close()
}

// recoverCorrupt turns a panic inside excelize into an error: it parses
// files that anyone who can create a UserImport supplies, and it is not
// written to withstand hostile input.
func recoverCorrupt(err *error) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("the workbook is corrupt: %v", v)
	}
}

// checkWorkbook reads every part of the zip archive once, without keeping
// anything, before excelize opens it. excelize trusts the sizes the archive
// declares, ignores a part that fails its checksum and stops quietly at a
// worksheet cut short, which would import part of a file as if it were all
// of it. Here the bytes that really come out are counted against the limit,
// checksums are verified and each worksheet must end with its closing tag.
func checkWorkbook(src io.ReaderAt, size, limit int64) error {
	zr, err := zip.NewReader(src, size)
	if err != nil {
		return fmt.Errorf("the file is not a valid XLSX workbook: %w", err)
	}
	var total int64
	var isPackage bool
	for _, f := range zr.File {
		name := strings.ToLower(strings.ReplaceAll(f.Name, `\`, "/"))
		if name == "[content_types].xml" {
			isPackage = true
		}
		if f.UncompressedSize64 > uint64(limit-total) {
			return fmt.Errorf("%w: the workbook unpacks to more than %d bytes", ErrTooLarge, limit)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("the workbook is corrupt: part %s: %w", f.Name, err)
		}
		var end tail
		n, err := io.Copy(&end, io.LimitReader(rc, limit-total+1))
		_ = rc.Close()
		total += n
		if total > limit {
			return fmt.Errorf("%w: the workbook unpacks to more than %d bytes", ErrTooLarge, limit)
		}
		if errors.Is(err, zip.ErrFormat) {
			return fmt.Errorf("the workbook is corrupt: part %s unpacks to more than its declared size: %w", f.Name, err)
		}
		if err != nil {
			return fmt.Errorf("the workbook is corrupt: part %s: %w", f.Name, err)
		}
		if strings.HasPrefix(name, "xl/worksheets/") && strings.HasSuffix(name, ".xml") &&
			!bytes.HasSuffix(bytes.TrimSpace(end.b), []byte("worksheet>")) {
			return fmt.Errorf("the workbook is corrupt: worksheet %s is cut short", f.Name)
		}
	}
	if !isPackage {
		return errors.New("the file is a zip archive but not an Excel workbook")
	}
	return nil
}

// tail keeps the last bytes written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	const keep = 64
	if len(p) >= keep {
		t.b = append(t.b[:0], p[len(p)-keep:]...)
	} else {
		t.b = append(t.b, p...)
		if len(t.b) > keep {
			t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
		}
	}
	return len(p), nil
}
