package importfile

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"roster.dev/roster/internal/validation"
)

// field is what a column holds.
type field int

const (
	fieldNone field = iota // a column without a header name
	fieldAction
	fieldEmail
	fieldFirstName
	fieldLastName
	fieldRole
	fieldGroups
	fieldMobile
	fieldTimeZone
	fieldCountry
	fieldLocale
)

// fieldNames are the names the format and error messages use.
var fieldNames = [...]string{
	fieldAction:    "action",
	fieldEmail:     "username",
	fieldFirstName: "firstName",
	fieldLastName:  "lastName",
	fieldRole:      "role",
	fieldGroups:    "groups",
	fieldMobile:    "mobile",
	fieldTimeZone:  "timeZone",
	fieldCountry:   "country",
	fieldLocale:    "locale",
}

// Header returns the header row the writers produce: every column, in order.
func Header() []string {
	return append([]string(nil), fieldNames[fieldAction:]...)
}

// column is what one cell position of a row means.
type column struct {
	field field
	name  string // for messages: the field's name, or the column's letter
}

// positional are the columns of a file without a header row.
var positional = []column{
	{fieldAction, "action"},
	{fieldEmail, "username"},
	{fieldFirstName, "firstName"},
	{fieldLastName, "lastName"},
}

// headerKey folds the ways people write a column name, so "Time Zone",
// "time_zone" and "timeZone" match.
func headerKey(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '_', '-':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}

// namedFields are the fields a header can name after the first four.
var namedFields = map[string]field{
	"role": fieldRole, "groups": fieldGroups, "mobile": fieldMobile,
	"timezone": fieldTimeZone, "country": fieldCountry, "locale": fieldLocale,
}

// headerColumns maps a header row to columns. The first four are positional
// whatever they are called, so a translated header still works; but a name
// that clearly belongs elsewhere (such as role in the first column) is an
// error, because every row would be read wrongly. With redact, errors do
// not quote the header's cells.
func headerColumns(n int, cells []string, redact bool) ([]column, error) {
	cols := append([]column(nil), positional...)
	for i, cell := range cells {
		key := headerKey(unescape(strings.TrimSpace(cell)))
		letter := columnLetter(i)
		if i < len(positional) {
			if f, ok := knownField(key); ok && f != positional[i].field {
				if redact {
					return nil, &HeaderError{Row: n, Column: letter, Message: fmt.Sprintf(
						"this column is named after another one, where %s belongs; the first four columns are action, username, firstName and lastName, in that order",
						positional[i].name)}
				}
				return nil, &HeaderError{Row: n, Column: letter, Message: fmt.Sprintf(
					"found %q where %s belongs; the first four columns are action, username, firstName and lastName, in that order",
					strings.TrimSpace(cell), positional[i].name)}
			}
			continue
		}
		if key == "" {
			cols = append(cols, column{fieldNone, letter})
			continue
		}
		f, ok := namedFields[key]
		if !ok && redact {
			return nil, &HeaderError{Row: n, Column: letter, Message: "unknown column name; after lastName the columns can be role, groups, mobile, timeZone, country and locale"}
		}
		if !ok {
			return nil, &HeaderError{Row: n, Column: letter, Message: fmt.Sprintf(
				"unknown column %q; after lastName the columns can be role, groups, mobile, timeZone, country and locale",
				strings.TrimSpace(cell))}
		}
		for _, c := range cols {
			if c.field == f {
				return nil, &HeaderError{Row: n, Column: letter, Message: fmt.Sprintf("%s appears twice", fieldNames[f])}
			}
		}
		cols = append(cols, column{f, fieldNames[f]})
	}
	return cols, nil
}

// knownField recognises a folded header name as any of the format's columns.
func knownField(key string) (field, bool) {
	if key == "email" {
		return fieldEmail, true
	}
	for f, name := range fieldNames {
		if f != int(fieldNone) && strings.ToLower(name) == key {
			return field(f), true
		}
	}
	return fieldNone, false
}

// parse turns the cells of data row n into a Row, or a *RowError naming the
// first problem found.
func (r *Reader) parse(n int, cells []string) (Row, error) {
	row := Row{Number: n}
	var action, groups string
	// rowErr reports a problem in a message that quotes no cell.
	rowErr := func(col, format string, args ...any) (Row, error) {
		return Row{}, &RowError{Row: n, Column: col, Email: r.email(row), Message: fmt.Sprintf(format, args...)}
	}
	// invalid reports a failed check, whose message may quote the cell.
	invalid := func(col string, err error) (Row, error) {
		if r.redact {
			return rowErr(col, "%s", redactedReasons[col])
		}
		return rowErr(col, "%s", err)
	}
	// Read every cell first, so that errors carry the row's email.
	var bad *RowError
	for i, cell := range cells {
		v := unescape(strings.TrimSpace(cell))
		if v == "" {
			continue
		}
		col := column{fieldNone, columnLetter(i)}
		if i < len(r.columns) {
			col = r.columns[i]
		}
		switch {
		case bad != nil:
		case !utf8.ValidString(v):
			bad = &RowError{Row: n, Column: col.name, Message: "the text is not valid UTF-8; save the file as CSV UTF-8"}
		case col.field == fieldNone && i >= len(r.columns) && !r.skipHeader:
			bad = &RowError{Row: n, Column: col.name, Message: fmt.Sprintf(
				"unexpected value%s: without a header row only action, username, firstName and lastName are read; add a header row naming the column and set spec.skipHeader: true", r.quoted(v))}
		case col.field == fieldNone:
			bad = &RowError{Row: n, Column: col.name, Message: fmt.Sprintf("unexpected value%s in a column without a header name", r.quoted(v))}
		}
		switch col.field {
		case fieldAction:
			action = v
			row.Action = Action(strings.ToLower(v))
		case fieldEmail:
			row.Email = v
		case fieldFirstName:
			row.FirstName = v
		case fieldLastName:
			row.LastName = v
		case fieldRole:
			row.Role = v
		case fieldGroups:
			groups = v
		case fieldMobile:
			row.Mobile = v
		case fieldTimeZone:
			row.TimeZone = v
		case fieldCountry:
			// The schema wants upper case; "de" can only mean DE.
			row.Country = strings.ToUpper(v)
		case fieldLocale:
			row.Locale = v
		}
	}
	if !utf8.ValidString(row.Email) || len(row.Email) > 2*validation.MaxEmailLength {
		row.Email = "" // not worth echoing in a failure list
	}

	if bad != nil {
		bad.Email = r.email(row)
		return Row{}, bad
	}
	switch row.Action {
	case ActionAdd, ActionRemove, ActionUpdate:
	case "":
		return rowErr("action", "the action is empty; use add-user, remove-user or update")
	default:
		if r.redact {
			return rowErr("action", "not an action; use add-user, remove-user or update")
		}
		return rowErr("action", "%q is not an action; use add-user, remove-user or update", action)
	}
	if row.Email == "" {
		return rowErr("username", "an email address is required")
	}
	if err := validation.Email(row.Email); err != nil {
		return invalid("username", err)
	}
	if row.Action != ActionRemove {
		if row.FirstName == "" {
			return rowErr("firstName", "a first name is required for %s", row.Action)
		}
		if row.LastName == "" {
			return rowErr("lastName", "a last name is required for %s", row.Action)
		}
	}
	for _, c := range []struct {
		name  string
		value string
		check func(string) error
	}{
		{"firstName", row.FirstName, validation.Name},
		{"lastName", row.LastName, validation.Name},
		{"role", row.Role, validation.Role},
		{"mobile", row.Mobile, validation.Mobile},
		{"timeZone", row.TimeZone, validation.TimeZone},
		{"country", row.Country, validation.Country},
		{"locale", row.Locale, validation.Locale},
	} {
		if c.value == "" {
			continue
		}
		if err := c.check(c.value); err != nil {
			return invalid(c.name, err)
		}
	}
	if groups != "" {
		row.Groups = splitGroups(groups)
		if err := validation.Groups(row.Groups); err != nil {
			return invalid("groups", err)
		}
	}
	return row, nil
}

// email is the email a row error carries: none when errors are redacted.
func (r *Reader) email(row Row) string {
	if r.redact {
		return ""
	}
	return row.Email
}

// quoted is a cell quoted after a space, to follow a word in a message, or
// nothing when errors are redacted.
func (r *Reader) quoted(v string) string {
	if r.redact {
		return ""
	}
	return fmt.Sprintf(" %q", v)
}

// redactedReasons say what is wrong with a cell of each column without
// quoting it, for Options.Redact. They describe what the column accepts,
// since the check's own message names the value.
var redactedReasons = map[string]string{
	"username": fmt.Sprintf("not a valid email address: one bare address such as jane@example.com, at most %d characters",
		validation.MaxEmailLength),
	"firstName": fmt.Sprintf("not a valid name: UTF-8 text of at most %d characters", validation.MaxNameLength),
	"lastName":  fmt.Sprintf("not a valid name: UTF-8 text of at most %d characters", validation.MaxNameLength),
	"role": fmt.Sprintf("not a valid role name: up to %d letters, digits, '_', '.' or '-', starting with a letter",
		validation.MaxRoleLength),
	"groups": fmt.Sprintf("not a valid list of groups: at most %d Group names separated by ';', each of lower-case letters, digits, '-' and '.'",
		validation.MaxGroups),
	"mobile":   "not a mobile number in E.164 form such as +4915123456789",
	"timeZone": "not an IANA time zone name such as Europe/Berlin",
	"country":  "not an ISO 3166-1 alpha-2 country code such as DE",
	"locale":   "not a language tag such as en-GB",
}

// splitGroups splits a groups cell on ';', dropping empty names (a trailing
// ';' is common) and repeats, which the User schema would refuse. A cell of
// only separators sets no groups. It stops one past the most a user may
// have, which is enough to refuse the cell and keeps the repeat check cheap.
func splitGroups(s string) []string {
	var out []string
	for g := range strings.SplitSeq(s, ";") {
		g = strings.TrimSpace(g)
		if g == "" || slices.Contains(out, g) {
			continue
		}
		if out = append(out, g); len(out) > validation.MaxGroups {
			break
		}
	}
	return out
}
