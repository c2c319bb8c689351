package importfile

import (
	"bytes"
	"fmt"
	"io"
)

// File signatures.
var (
	zipMagic      = []byte("PK\x03\x04")
	emptyZipMagic = []byte("PK\x05\x06")
	gzipMagic     = []byte{0x1f, 0x8b}
	// oleMagic starts legacy .xls workbooks and password-protected .xlsx
	// workbooks, which Excel wraps in an encrypted compound file.
	oleMagic = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}
)

// detect decides how to read the file from the format asked for and the
// file's first bytes. compressed means gzip-compressed CSV.
func detect(src io.ReaderAt, size int64, want Format) (format Format, compressed bool, err error) {
	head := make([]byte, min(size, 8))
	if _, err := src.ReadAt(head, 0); err != nil && err != io.EOF {
		return "", false, fmt.Errorf("reading the start of the file: %w", err)
	}
	isZip := bytes.HasPrefix(head, zipMagic) || bytes.HasPrefix(head, emptyZipMagic)
	if bytes.HasPrefix(head, oleMagic) {
		return "", false, fmt.Errorf("the file is a legacy .xls or a password-protected workbook; save it as an .xlsx workbook without a password, or as CSV UTF-8")
	}
	switch want {
	case "":
		if isZip {
			return FormatXLSX, false, nil
		}
		return FormatCSV, bytes.HasPrefix(head, gzipMagic), nil
	case FormatXLSX:
		if !isZip {
			return "", false, fmt.Errorf("the file is not an XLSX workbook: it does not start with a zip signature")
		}
		return FormatXLSX, false, nil
	case FormatCSV:
		if isZip {
			return "", false, fmt.Errorf("the format is CSV but the file is a zip archive, such as an XLSX workbook; set the format to XLSX or leave it unset")
		}
		return FormatCSV, bytes.HasPrefix(head, gzipMagic), nil
	default:
		return "", false, fmt.Errorf("unknown format %q: use CSV or XLSX", want)
	}
}
