package store

import "slices"

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

// GroupDiff returns the update that brings observed to desired, considering
// only the fields desired manages: an empty string means not managed.
func GroupDiff(desired, observed Group) GroupUpdate {
	str := func(want, have string) *string {
		if want == "" || want == have {
			return nil
		}
		return &want
	}
	return GroupUpdate{
		DisplayName: str(desired.DisplayName, observed.DisplayName),
		ExternalID:  str(desired.ExternalID, observed.ExternalID),
		Description: str(desired.Description, observed.Description),
	}
}

// MembershipDiff returns the members to add to observed and to remove from it
// so that it equals desired. Both are sets of store user IDs in any order,
// duplicates allowed; the result is sorted, so that the call it becomes is
// the same whatever order the inputs came in.
func MembershipDiff(desired, observed []string) MemberDiff {
	want := make(map[string]struct{}, len(desired))
	for _, id := range desired {
		want[id] = struct{}{}
	}
	have := make(map[string]struct{}, len(observed))
	for _, id := range observed {
		have[id] = struct{}{}
	}
	var d MemberDiff
	for id := range want {
		if _, ok := have[id]; !ok {
			d.Add = append(d.Add, id)
		}
	}
	for id := range have {
		if _, ok := want[id]; !ok {
			d.Remove = append(d.Remove, id)
		}
	}
	slices.Sort(d.Add)
	slices.Sort(d.Remove)
	return d
}
