package importfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvSource reads CSV text with encoding/csv and works out each record's
// row number as a spreadsheet would show it: encoding/csv skips empty lines
// and a quoted field may span lines, so the number comes from the lines
// between records rather than from counting records.
type csvSource struct {
	r       *csv.Reader
	what    string // for error messages
	lastRow int    // row number of the previous record
	lastEnd int    // line on which the previous record ended
}

func newCSVSource(src io.ReaderAt, size, limit int64, compressed bool) (*csvSource, error) {
	s := &csvSource{what: "CSV file"}
	var in io.Reader = io.NewSectionReader(src, 0, size)
	if compressed {
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, fmt.Errorf("reading the gzip-compressed CSV file: %w", err)
		}
		s.what = "gzip-compressed CSV file"
		in = &cappedReader{r: zr, left: limit, limit: limit}
	}
	br := bufio.NewReaderSize(in, 64<<10)
	head, err := br.Peek(3)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading the %s: %w", s.what, err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("\xef\xbb\xbf")):
		// Excel's "CSV UTF-8" starts with a byte order mark.
		_, _ = br.Discard(3)
	case bytes.HasPrefix(head, []byte("\xff\xfe")), bytes.HasPrefix(head, []byte("\xfe\xff")):
		return nil, errors.New("the file is UTF-16 text (Excel's \"Unicode Text\"); save it as CSV UTF-8")
	}
	s.r = csv.NewReader(br)
	s.r.FieldsPerRecord = -1
	s.r.TrimLeadingSpace = true
	s.r.ReuseRecord = true
	return s, nil
}

func (s *csvSource) next() (int, []string, error) {
	for {
		rec, err := s.r.Read()
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				row := s.lastRow + max(perr.StartLine-s.lastEnd, 1)
				s.lastRow, s.lastEnd = row, perr.Line
				return row, nil, &RowError{Row: row, Message: "the row is not valid CSV: " + perr.Err.Error() +
					`; a cell with commas, quotes or line breaks goes in double quotes, with each quote inside doubled`}
			}
			if err == io.EOF {
				return 0, nil, io.EOF
			}
			return 0, nil, fmt.Errorf("reading the %s: %w", s.what, err)
		}
		start, _ := s.r.FieldPos(0)
		end, _ := s.r.FieldPos(len(rec) - 1)
		end += strings.Count(rec[len(rec)-1], "\n")
		row := s.lastRow + max(start-s.lastEnd, 1)
		s.lastRow, s.lastEnd = row, end
		if blank(rec) {
			continue
		}
		return row, rec, nil
	}
}

// close has nothing to release: a gzip.Reader holds no resources and its
// Close only repeats a read error that next has already returned.
func (s *csvSource) close() error { return nil }

// cappedReader fails once more than limit bytes come out of r, so that a
// small gzip file cannot unpack into an unbounded stream.
type cappedReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, err := c.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: it unpacks to more than %d bytes", ErrTooLarge, c.limit)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
