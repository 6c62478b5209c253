package privacy_test

import (
	"errors"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// Rows of a subject that a delete could leave behind: written for rows an
// earlier round or attempt deleted, owned through the subject's own self
// link, or merged with another person's by a match rule. Each test counts
// the rows with plain SQL.

// TestReviewAgainFollowsTheDeletedRows: a two-step delete whose first
// confirmed run meets a delivery log written after the review (L1) deletes
// the reviewed rows, the recipient among them, and goes back to
// confirmDeletePending with L1 alone. A second delivery log L2 written for
// the same recipient — while that run deleted it ("during run"), or
// before the second confirmation ("between rounds") — is a row of the
// subject (README "How a request goes" §3: a row added meanwhile is
// deleted through the ids found before, though the value no longer leads
// to it). The request must not reach complete while L2 is left behind.
func TestReviewAgainFollowsTheDeletedRows(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		for _, during := range []bool{true, false} {
			name := "between rounds"
			if during {
				name = "during run"
			}
			t.Run(name, func(t *testing.T) { rereviewForgets(t, dialect, during) })
		}
	})
}

func rereviewForgets(t *testing.T, dialect string, during bool) {
	var (
		f     *fixture
		rcp   int64
		added bool
	)
	addL2 := func() error {
		return storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990002), "recipient_id": rcp, "address": demodata.Email(1)})
	}
	f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
		c.Workers = 1
		c.DeleteBatch = 1
		c.Failpoint = func(name string) error {
			if !during || added || name != "delete-after-batch" {
				return nil
			}
			// Once the run has deleted the recipient, the delivery
			// still running writes one more log for it.
			n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp)
			if err != nil || n > 0 {
				return err
			}
			added = true
			return addL2()
		}
	}})
	sql := storetest.SQLOf(t, f.env.DB)
	rcp = recipientID(t, f, 1)
	id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
	f.run(t, privacy.Collect)
	// L1: a delivery log written after the review.
	if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
		t.Fatal(err)
	}
	f.run(t, privacy.Delete)
	if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
		t.Fatalf("after the first delete: %s", s)
	}
	if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
		t.Fatalf("the reviewed recipient is still there")
	}
	if !during {
		if err := addL2(); err != nil {
			t.Fatal(err)
		}
	} else if !added {
		t.Fatal("the failpoint never added L2")
	}
	// L2 goes to a review of its own (it was never reviewed), then the
	// request completes with nothing of the recipient left.
	s := f.status(t, id)
	for round := 0; s == privacy.StatusConfirmDeletePending && round < 3; round++ {
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		s = f.status(t, id)
	}
	left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
	if err != nil {
		t.Fatal(err)
	}
	if s != privacy.StatusComplete || left > 0 {
		t.Fatalf("request %s, %d delivery log(s) of the erased recipient %d left", s, left, rcp)
	}
	if others, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp"); others == 0 {
		t.Fatal("the other recipients' delivery logs are gone too")
	}
}

// TestTwoStepRetryFollowsDeletedReviewedRows: a confirmed
// two-step delete whose attempt stops after the subject's visitor rows
// were deleted (before the recipient's), while an offer proposition is
// written for that visitor. The row is owned by a reviewed row: per
// DESIGN it goes to a new review (or is deleted); the request must be
// able to finish, not fail every attempt until it ends in error with the
// row left.
func TestTwoStepRetryFollowsDeletedReviewedRows(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var (
			f       *fixture
			visitor int64
			stopped bool
		)
		f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Workers = 1
			c.DeleteBatch = 1 // one row a transaction: the run can stop between tables
			c.Failpoint = func(name string) error {
				if name != "delete-after-batch" || stopped {
					return nil
				}
				sql := storetest.SQLOf(t, f.env.DB)
				n, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_visitor WHERE id = ?", visitor)
				if err != nil || n > 0 {
					return err
				}
				stopped = true
				if err := sql.InsertRow(f.ctx, "nms_proposition_visitor", map[string]any{"id": int64(990101), "visitor_id": visitor, "offer_label": "late"}); err != nil {
					return err
				}
				return errors.New("the attempt stopped after the visitor's delete")
			}
		}})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		var err error
		if visitor, err = sql.Int(f.ctx, "SELECT id FROM nms_visitor WHERE recipient_id = ?", rcp); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		var s privacy.Status
		for i := 0; i < 10; i++ {
			if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
				t.Logf("delete run %d: %v", i, err)
			}
			s = f.status(t, id)
			if s == privacy.StatusComplete || s == privacy.StatusError {
				break
			}
			if s == privacy.StatusConfirmDeletePending {
				if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
					t.Fatal(err)
				}
			}
			f.env.Clock.Advance(24 * time.Hour)
		}
		if !stopped {
			t.Fatal("the failpoint never stopped the attempt")
		}
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_proposition_visitor WHERE visitor_id = ?", visitor)
		if err != nil {
			t.Fatal(err)
		}
		if s != privacy.StatusComplete || left != 0 {
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			t.Fatalf("request %s with %d proposition(s) of the erased visitor left; audit:\n%s", s, left, r.Audit)
		}
	})
}

// TestPhoneExtensionsAreTwoPeople: under the phone rule two
// people on one switchboard number, at extensions 123 and 456, are
// different stored values; a delete for "… ext. 123" must not erase the
// person at extension 456 (no rule widens a match: a number without its
// extension is a prefix of both).
func TestPhoneExtensionsAreTwoPeople(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		// Stored before the rule was set (an earlier version, another tool).
		for id, phone := range map[int64]string{9501: "+1 650-253-0000 ext. 123", 9502: "+1 650-253-0000 ext. 456"} {
			if err := sql.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": id, "email": "ext" + itoa(id) + "@example.com", "phone": phone}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace3", MatchRule: "phone", DefaultRegion: "US"}); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace3", "+1 650-253-0000 ext. 123", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("delete: %s", s)
		}
		other, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = 9502")
		if err != nil {
			t.Fatal(err)
		}
		if other != 1 {
			t.Fatal("the delete for extension 123 erased the recipient at extension 456")
		}
	})
}

// personSchema is a custom subject schema that owns itself: a dependant
// person belongs to the person it names (revIntegrity="own").
const personSchema = `<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="person" label="People">
  <element name="person" autopk="true" label="People">
    <attribute name="email" type="string" length="80" label="Email"/>
    <element name="guardian" type="link" target="cus:person" revIntegrity="own" label="Guardian"/>
  </element>
</schema>`

// TestSubjectSelfLinkCheckedAfterDelete: a namespace on a custom
// schema whose rows own rows of the same schema. A dependant written for
// the subject while its one-step delete runs is owned by the subject; the
// sweep after the delete checks a non-root table's self links, and must
// check the root's too, rather than complete with the dependant left.
func TestSubjectSelfLinkCheckedAfterDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var (
			f     *fixture
			added bool
		)
		f = newFixture(t, dialect, servertest.Options{
			Schemas: fstest.MapFS{"cus_person.xml": {Data: []byte(personSchema)}},
			Privacy: func(c *privacy.Config) {
				c.Workers = 1
				c.Failpoint = func(name string) error {
					if name != "delete-lookup" || added {
						return nil
					}
					added = true
					return storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "cus_person", map[string]any{"id": int64(3), "email": "kid2@example.com", "guardian_id": int64(1)})
				}
			}})
		if err := f.env.Privacy.CreateNamespace(f.ctx, admin, privacy.Namespace{Name: "person", Label: "Person - email",
			TargetSchema: "cus:person", ReconciliationKey: "@email"}); err != nil {
			t.Fatal(err)
		}
		sql := storetest.SQLOf(t, f.env.DB)
		for _, r := range []map[string]any{
			{"id": int64(1), "email": "parent@example.com"},
			{"id": int64(2), "email": "kid1@example.com", "guardian_id": int64(1)},
			{"id": int64(9), "email": "other@example.com"},
		} {
			if err := sql.InsertRow(f.ctx, "cus_person", r); err != nil {
				t.Fatal(err)
			}
		}
		id := f.create(t, "person", "parent@example.com", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		if !added {
			t.Fatal("the failpoint did not run")
		}
		// The check finds the dependant: the attempt fails, and its retry
		// deletes it.
		s := f.status(t, id)
		if s == privacy.StatusComplete {
			t.Fatal("the attempt completed with the dependant written during it")
		}
		for i := 0; s != privacy.StatusComplete && s != privacy.StatusError && i < 3; i++ {
			f.env.Clock.Advance(time.Hour)
			f.run(t, privacy.Delete)
			s = f.status(t, id)
		}
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM cus_person WHERE id IN (1, 2, 3)")
		if err != nil {
			t.Fatal(err)
		}
		if s != privacy.StatusComplete || left > 0 {
			t.Fatalf("request %s, %d row(s) of the subject left in cus_person", s, left)
		}
		if other, _ := sql.Int(f.ctx, "SELECT count(*) FROM cus_person WHERE id = 9"); other != 1 {
			t.Fatal("another person was deleted")
		}
	})
}

// TestResumedDeleteFollowsRecordedRows: a one-step delete whose
// rows are gone but whose run stopped before the residue purge completed
// it (a crash) stays deleteInProgress; the next run takes it back. A
// delivery log written meanwhile for the erased recipient is a row of the
// subject, reached through the ids the attempt found (README §3) — as it
// is when the subject is larger than a delete batch ("large subject"),
// and must be when it fits one and was deleted in the worker's batch
// commit ("batched").
func TestResumedDeleteFollowsRecordedRows(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		for _, batched := range []bool{true, false} {
			name := "large subject"
			if batched {
				name = "batched"
			}
			t.Run(name, func(t *testing.T) { resumedDeleteFollows(t, dialect, batched) })
		}
	})
}

func resumedDeleteFollows(t *testing.T, dialect string, batched bool) {
	var crashed bool
	f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
		c.Workers = 1
		if !batched {
			c.DeleteBatch = 2
		}
		c.Failpoint = func(name string) error {
			if name == "residue-purge" && !crashed {
				crashed = true
				return errors.New("the process died before the residue purge")
			}
			return nil
		}
	}})
	sql := storetest.SQLOf(t, f.env.DB)
	rcp := recipientID(t, f, 1)
	id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, false)
	f.run(t, privacy.Collect)
	if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err == nil || !crashed {
		t.Fatalf("the first run did not stop: %v", err)
	}
	if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
		t.Fatalf("after the stopped run: %s", s)
	}
	if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
		t.Fatal("the recipient was not deleted by the first run")
	}
	if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990003), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
		t.Fatal(err)
	}
	f.env.Clock.Advance(time.Hour) // past the lease
	f.run(t, privacy.Delete)
	s := f.status(t, id)
	left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
	if err != nil {
		t.Fatal(err)
	}
	if s != privacy.StatusComplete || left > 0 {
		t.Fatalf("request %s, %d delivery log(s) of the erased recipient %d left", s, left, rcp)
	}
}
