package privacy_test

import (
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestClaimLookupIsEachRequestsOwn: the subjects of a claim's requests,
// looked up together (one statement per level for all of them), are
// exactly what each request's lookup alone finds — the same value twice,
// a subject sharing a row with another (a reply owned by both), another
// namespace, a value matching nobody, and a request whose value no longer
// fits its namespace's rule, whose error stays its own.
func TestClaimLookupIsEachRequestsOwn(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: fstest.MapFS{"cus_note.xml": {Data: []byte(noteSchema)}}})
		two, three := recipientID(t, f, 2), recipientID(t, f, 3)
		addNotes(t, f, two, three)
		// 501 answers the subject's note 101 and belongs to recipient 3:
		// both subjects own it.
		if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "cus_note", map[string]any{"id": 501, "body": "note-501", "recipient_id": three, "parent_id": 101}); err != nil {
			t.Fatal(err)
		}
		ids := []int64{
			f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeAccess, false),
			f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false),
			f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false),
			f.create(t, "defaultNamespace2", "+491700000004", privacy.TypeDelete, false),
			f.create(t, "defaultNamespace1", "nobody@example.com", privacy.TypeAccess, false),
			f.create(t, "defaultNamespace3", "+15550109999", privacy.TypeAccess, false),
		}
		// The last request's value is now empty once canonical: refused.
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace3", MatchRule: "phone", DefaultRegion: "us"}); err != nil {
			t.Fatal(err)
		}
		if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "UPDATE privacy_requests SET reconciliation_value = '\u200b' WHERE id = ?", ids[5]); err != nil {
			t.Fatal(err)
		}
		together, alone, errsTogether, errsAlone, err := f.env.Privacy.LookupTogether(f.ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			if !reflect.DeepEqual(together[i], alone[i]) || (errsTogether[i] == nil) != (errsAlone[i] == nil) {
				t.Errorf("request %d: together %v (%v), alone %v (%v)", i, together[i], errsTogether[i], alone[i], errsAlone[i])
			}
		}
		notes := func(i int) []int64 { return together[i]["cus:note"] }
		if want := []int64{101, 102, 103, 301, 302, 303, 501}; !reflect.DeepEqual(notes(0), want) || !reflect.DeepEqual(notes(2), want) {
			t.Errorf("recipient 2's notes: %v and %v, want %v", notes(0), notes(2), want)
		}
		if want := []int64{401, 402, 501}; !reflect.DeepEqual(notes(1), want) {
			t.Errorf("recipient 3's notes: %v, want %v", notes(1), want)
		}
		for i, schema := range map[int]string{0: "nms:broadLogRcp", 1: "nms:broadLogRcp", 3: "nms:recipient"} {
			if len(together[i][schema]) == 0 {
				t.Errorf("request %d found nothing in %s: %v", i, schema, together[i])
			}
		}
		if len(together[4]) != 0 || errsTogether[4] != nil {
			t.Errorf("a value matching nobody: %v, %v", together[4], errsTogether[4])
		}
		if errsTogether[5] == nil {
			t.Errorf("a value its namespace's rule refuses was looked up: %v", together[5])
		}
	})
}
