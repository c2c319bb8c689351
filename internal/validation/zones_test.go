package validation

import (
	"slices"
	"testing"
)

func TestTimeZonesAreValidAndSorted(t *testing.T) {
	zones := TimeZones()
	if len(zones) < 300 {
		t.Fatalf("TimeZones() lists %d zones, want the whole of zone.tab", len(zones))
	}
	if !slices.IsSorted(zones) {
		t.Error("TimeZones() is not sorted")
	}
	for _, z := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"} {
		if !slices.Contains(zones, z) {
			t.Errorf("TimeZones() lacks %s", z)
		}
	}
	for _, z := range zones {
		if err := TimeZone(z); err != nil {
			t.Errorf("TimeZones() lists %s, which TimeZone refuses: %v", z, err)
		}
	}
}
