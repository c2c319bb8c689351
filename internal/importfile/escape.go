package importfile

// Spreadsheet programs run a cell that starts with '=', '+', '-' or '@' as a
// formula (and some strip a leading tab or carriage return first), so a
// user's name such as =HYPERLINK(...) in an exported file could run in the
// admin's spreadsheet. Writers put a single quote in front of such cells,
// the convention spreadsheets themselves use for "this is text", and the
// reader takes it off again, so the mobile +4915123456789 round-trips.
//
// To keep the round trip exact for values that themselves start with quotes
// before such a character, the rule is: a value matching ^'*[=+\-@\t\r] is
// written with one more leading quote, and a cell matching ^'+[=+\-@\t\r]
// is read with one quote less.

func isFormulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// afterQuotes returns the index of the first byte of s that is not a quote.
func afterQuotes(s string) int {
	i := 0
	for i < len(s) && s[i] == '\'' {
		i++
	}
	return i
}

// escape prefixes a cell value that a spreadsheet would run as a formula.
func escape(s string) string {
	if i := afterQuotes(s); i < len(s) && isFormulaStart(s[i]) {
		return "'" + s
	}
	return s
}

// unescape removes the prefix escape adds; a person typing '+4915... by
// hand gets the same.
func unescape(s string) string {
	if i := afterQuotes(s); i > 0 && i < len(s) && isFormulaStart(s[i]) {
		return s[1:]
	}
	return s
}
