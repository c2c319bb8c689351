package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func TestUserDiff(t *testing.T) {
	observed := User{
		ID: "1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Role: "Member",
		Country: "GB", Attributes: map[string]string{"team": "engines", "unmanaged": "x"},
	}
	cases := []struct {
		name     string
		desired  User
		observed User
		want     UserUpdate
	}{
		{
			name:     "nothing differs",
			desired:  User{FirstName: "Ada", LastName: "Lovelace", Role: "Member", Attributes: map[string]string{"team": "engines"}},
			observed: observed,
			want:     UserUpdate{},
		},
		{
			name:     "unset fields are not managed",
			desired:  User{},
			observed: observed,
			want:     UserUpdate{},
		},
		{
			name:     "changed names and a new attribute",
			desired:  User{FirstName: "Augusta", LastName: "Lovelace", Attributes: map[string]string{"team": "engines", "floor": "2"}},
			observed: observed,
			want:     UserUpdate{FirstName: ptr("Augusta"), Attributes: map[string]string{"floor": "2"}},
		},
		{
			name:     "deactivation is always managed",
			desired:  User{Disabled: true},
			observed: observed,
			want:     UserUpdate{Disabled: ptr(true)},
		},
		{
			name:     "reactivation",
			desired:  User{},
			observed: User{Disabled: true},
			want:     UserUpdate{Disabled: ptr(false)},
		},
		{
			name:     "every scalar field",
			desired:  User{Role: "Admin", Mobile: "+4915123456789", TimeZone: "Europe/Berlin", Country: "DE", Locale: "de-DE"},
			observed: observed,
			want:     UserUpdate{Role: ptr("Admin"), Mobile: ptr("+4915123456789"), TimeZone: ptr("Europe/Berlin"), Country: ptr("DE"), Locale: ptr("de-DE")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := UserDiff(tc.desired, tc.observed)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("UserDiff() mismatch (-want +got):\n%s", diff)
			}
			if got.IsEmpty() != (cmp.Diff(UserUpdate{}, got) == "") {
				t.Errorf("IsEmpty() = %v for %+v", got.IsEmpty(), got)
			}
			// Applying the diff must leave nothing to change.
			if again := UserDiff(tc.desired, got.Apply(tc.observed)); !again.IsEmpty() {
				t.Errorf("diff after Apply is not empty: %+v", again)
			}
		})
	}
}
