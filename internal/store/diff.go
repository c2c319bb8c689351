package store

// UserDiff returns the update that brings observed to desired, considering
// only the fields desired manages: an empty string in desired means the field
// is not managed and is left as the store has it. Disabled is always managed.
func UserDiff(desired, observed User) UserUpdate {
	var u UserUpdate
	str := func(want, have string) *string {
		if want == "" || want == have {
			return nil
		}
		return &want
	}
	u.FirstName = str(desired.FirstName, observed.FirstName)
	u.LastName = str(desired.LastName, observed.LastName)
	u.Role = str(desired.Role, observed.Role)
	u.Mobile = str(desired.Mobile, observed.Mobile)
	u.TimeZone = str(desired.TimeZone, observed.TimeZone)
	u.Country = str(desired.Country, observed.Country)
	u.Locale = str(desired.Locale, observed.Locale)
	for k, v := range desired.Attributes {
		if have, ok := observed.Attributes[k]; !ok || have != v {
			if u.Attributes == nil {
				u.Attributes = map[string]string{}
			}
			u.Attributes[k] = v
		}
	}
	if desired.Disabled != observed.Disabled {
		d := desired.Disabled
		u.Disabled = &d
	}
	return u
}
