package privacy

import (
	"strings"
	"testing"
)

// TestEnumerationsMatchSchema checks that every Go constant has the name
// and value the schema declares, and that the console labels are the
// schema's; and that a disagreement is caught, not skipped.
func TestEnumerationsMatchSchema(t *testing.T) {
	status, typ, regulation, err := readEnumerations()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		got  enumEntry
		want enumEntry
	}{
		{enumEntry{StatusConfirmDeletePending.String(), StatusConfirmDeletePending.Label()}, enumEntry{"confirmDeletePending", "Confirm Delete Pending"}},
		{status[int(StatusErrorDataNotFound)], enumEntry{"errorDataNotFound", "Error data not found"}},
		{typ[TypeDelete], enumEntry{"delete", "Delete"}},
		{regulation[RegulationLGPD], enumEntry{"lgpd", "LGPD"}},
	} {
		if c.got != c.want {
			t.Errorf("got %+v, want %+v", c.got, c.want)
		}
	}
	if len(status) != len(Statuses()) || len(status) != 10 {
		t.Errorf("%d statuses in the schema, %d in Statuses()", len(status), len(Statuses()))
	}
	// A constant the schema names differently must stop the start.
	saved := goNames["status"][int(StatusComplete)]
	goNames["status"][int(StatusComplete)] = "completed"
	defer func() { goNames["status"][int(StatusComplete)] = saved }()
	if _, _, _, err := readEnumerations(); err == nil || !strings.Contains(err.Error(), `"completed"`) {
		t.Fatalf("a wrong name was not caught: %v", err)
	}
}
