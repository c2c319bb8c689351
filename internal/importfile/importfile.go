// Package importfile reads and writes the files of a bulk user import: CSV
// (plain or gzip-compressed) and Excel workbooks (.xlsx). A row says what to
// do with one user: action,username,firstName,lastName and, when the file has
// a header row, further columns named role, groups, mobile, timeZone, country
// and locale. docs/import-format.md describes the format for people.
//
// The package knows nothing about Kubernetes: the UserImport controller and
// the kubectl plugin read rows with a Reader, decide what each row means for
// the cluster, and write exports and templates with a Writer. Reading streams:
// memory stays flat as files grow, beyond the source bytes the caller holds.
package importfile

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Format is the kind of file: the values are those of v1alpha1.ImportFormat.
type Format string

const (
	// FormatCSV is comma-separated UTF-8 text, optionally gzip-compressed.
	FormatCSV Format = "CSV"
	// FormatXLSX is an Excel workbook; the first sheet is read.
	FormatXLSX Format = "XLSX"
)

// Action is what a row asks for.
type Action string

const (
	// ActionAdd adds the user; first and last name are required.
	ActionAdd Action = "add-user"
	// ActionRemove removes the user that holds the email.
	ActionRemove Action = "remove-user"
	// ActionUpdate changes the user; first and last name are required.
	ActionUpdate Action = "update"
)

// Row is one valid data row.
type Row struct {
	// Number is the row as a spreadsheet shows it: the file's first line is
	// row 1, and blank lines count.
	Number int
	Action Action
	// Email is the "username" column.
	Email     string
	FirstName string
	LastName  string
	// Role is "" when the row does not set it.
	Role string
	// Groups is nil when the row does not set it: the column is absent or
	// the cell is empty. Names are unique, in the order the cell gives them.
	Groups []string
	// Mobile, TimeZone, Country and Locale are "" when not set.
	Mobile   string
	TimeZone string
	Country  string
	Locale   string
}

// RowError is one invalid row; reading continues with the next row.
type RowError struct {
	// Row is the row number as a spreadsheet shows it.
	Row int
	// Column is the column's name (such as country), or its letter when it
	// has no name; "" when the problem is the row as a whole.
	Column string
	// Email is the row's username cell, when there is one and
	// Options.Redact is not set.
	Email string
	// Message is a sentence fragment for people.
	Message string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Message)
	}
	return fmt.Sprintf("row %d, column %s: %s", e.Row, e.Column, e.Message)
}

// HeaderError is a header row whose columns cannot be matched, such as an
// unknown or repeated column name. It is fatal: reading on would drop or
// misplace a column's values in every row.
type HeaderError struct {
	Row     int
	Column  string
	Message string
}

func (e *HeaderError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Message)
	}
	return fmt.Sprintf("row %d, column %s: %s", e.Row, e.Column, e.Message)
}

// ErrFirstLineInvalid is returned by the first call to Next when the first
// row is not a valid data row and Options.SkipHeader is false: most likely
// the file has a header row. The import stops before it changes anything.
//
//lint:ignore ST1005 the message is the product contract, shown to people as it is.
var ErrFirstLineInvalid = errors.New("The first line is invalid. If this is a header row, set spec.skipHeader: true.")

// ErrTooLarge is wrapped by the errors for a file over Options.MaxBytes,
// before or after unpacking.
var ErrTooLarge = errors.New("the file is over the size limit")

// DefaultMaxBytes is the limit when Options.MaxBytes is 0.
const DefaultMaxBytes = 64 << 20

// Options say how to read a file.
type Options struct {
	// Format is FormatCSV, FormatXLSX or "" to detect it from the content: a
	// zip signature means XLSX, a gzip signature gzip-compressed CSV, and
	// anything else CSV.
	Format Format
	// SkipHeader says the first row is a header. Its first four columns are
	// action, username, firstName and lastName whatever they are called;
	// further columns are matched by name, case-insensitively: role, groups
	// (separated by ';'), mobile, timeZone, country and locale.
	SkipHeader bool
	// MaxBytes caps the source and its unpacked size (gzip, and the parts of
	// an XLSX workbook). 0 means DefaultMaxBytes.
	MaxBytes int64
	// TempDir is where the XLSX reader unpacks worksheets and string tables
	// too large to keep in memory; "" is os.TempDir(). Without a writable
	// directory they are kept in memory, up to MaxBytes.
	TempDir string
	// Redact keeps the file's content out of every error: row and header
	// errors name the row, the column and what is wrong without quoting a
	// cell, RowError.Email stays empty, and fatal errors quote no cell or
	// sheet name. Set it when the errors reach people who may not be allowed
	// to read the file, such as the status of an import from a Secret.
	Redact bool
}

// source yields the raw cells of each row with the row's number.
type source interface {
	// next returns the next row that is not blank; the cells are only
	// valid until the following call. It returns a *RowError for a row that
	// cannot be read but does not stop the file, and io.EOF at the end.
	next() (number int, cells []string, err error)
	close() error
}

// Reader reads rows from an import file. It is not safe for concurrent use.
type Reader struct {
	src        source
	skipHeader bool
	redact     bool
	columns    []column // what each cell position means, from the header
	started    bool
	err        error // sticky fatal error
}

// NewReader reads rows from src, which holds size bytes. It reads the start
// of the file to find its format; a file it cannot read (over the size
// limit, corrupt, of another kind) is an error that names the problem.
func NewReader(src io.ReaderAt, size int64, opts Options) (*Reader, error) {
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if size > limit {
		return nil, fmt.Errorf("%w: it is %d bytes, more than %d", ErrTooLarge, size, limit)
	}
	format, compressed, err := detect(src, size, opts.Format)
	if err != nil {
		return nil, err
	}
	var s source
	switch format {
	case FormatXLSX:
		s, err = newXLSXSource(src, size, limit, opts.TempDir, opts.Redact)
	default:
		s, err = newCSVSource(src, size, limit, compressed)
	}
	if err != nil {
		return nil, err
	}
	return &Reader{src: s, skipHeader: opts.SkipHeader, redact: opts.Redact, columns: positional}, nil
}

// Next returns the next valid row. It returns io.EOF at the end of the file
// and a *RowError for an invalid row, after which Next may be called again.
// ErrFirstLineInvalid and *HeaderError come only from the first call; they
// and any other error are fatal, and Next keeps returning them.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	first := !r.started
	r.started = true
	n, cells, err := r.src.next()
	if err != nil {
		var rowErr *RowError
		if errors.As(err, &rowErr) {
			switch {
			case first && r.skipHeader:
				return Row{}, r.fail(&HeaderError{Row: rowErr.Row, Message: "the header row cannot be read: " + rowErr.Message})
			case first:
				return Row{}, r.fail(ErrFirstLineInvalid)
			}
			return Row{}, err
		}
		return Row{}, r.fail(err)
	}
	if first && r.skipHeader {
		if r.columns, err = headerColumns(n, cells, r.redact); err != nil {
			return Row{}, r.fail(err)
		}
		return r.Next()
	}
	row, err := r.parse(n, cells)
	if err != nil && first {
		return Row{}, r.fail(ErrFirstLineInvalid)
	}
	return row, err
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// Close releases what the reader holds, such as the XLSX reader's
// temporary files.
func (r *Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("the reader is closed")
	}
	return r.src.close()
}

// columnLetter names a column as a spreadsheet does: 0 is A, 26 is AA.
func columnLetter(i int) string {
	var b []byte
	for i++; i > 0; i = (i - 1) / 26 {
		b = append(b, byte('A'+(i-1)%26))
	}
	for l, r := 0, len(b)-1; l < r; l, r = l+1, r-1 {
		b[l], b[r] = b[r], b[l]
	}
	return string(b)
}

// blank reports whether a row has no content, as a blank line in a text
// editor or an empty row in a spreadsheet.
func blank(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}
