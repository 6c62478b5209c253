package privacy_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// A person's rows the service must keep reaching: counted when another
// person's row points at them, stored in a form a request finds, and not
// purged before the delete that was confirmed for them.

// caseSchema is a custom table owned by the recipient who opened the case
// (revIntegrity="own"), with an ordinary link to the recipient the case is
// assigned to (a referee, a contact person): no owning integrity.
var caseSchema = fstest.MapFS{"cus_case.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="case" label="Cases">
  <element name="case" autopk="true" label="Cases">
    <attribute name="title" type="string" length="128" label="Title"/>
    <element name="opener" type="link" target="nms:recipient" revIntegrity="own" label="Opened by"/>
    <element name="contact" type="link" target="nms:recipient" label="Contact person"/>
  </element>
</schema>`)}}

// TestCoverageCountsOrdinaryLinksOfOwnedTables: README "How erasure
// is proven": "Tables that point at the subject through an ordinary link (no
// owning integrity) are neither collected nor erased, as in ACC; the file
// (<linkedNotCollected>), the receipt, the audit and the console list them
// with counts". A case opened by another person whose contact person is
// the subject points at the subject through an ordinary link; it is not in
// the subject's file (it is the other person's), and it must be counted.
func TestCoverageCountsOrdinaryLinksOfOwnedTables(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: caseSchema})
		sql := storetest.SQLOf(t, f.env.DB)
		subject, other := recipientID(t, f, 4), recipientID(t, f, 5)
		// Two cases opened by someone else with the subject as contact.
		for i, row := range []map[string]any{
			{"id": int64(700001), "title": "Refund", "opener_id": other, "contact_id": subject},
			{"id": int64(700002), "title": "Complaint", "opener_id": other, "contact_id": subject},
			// The subject's own case, naming the subject too: collected, not counted.
			{"id": int64(700003), "title": "Own", "opener_id": subject, "contact_id": subject},
		} {
			if err := sql.InsertRow(f.ctx, "cus_case", row); err != nil {
				t.Fatal(i, err)
			}
		}
		// Ground truth, plain SQL: rows pointing at the subject through the
		// ordinary link that the subject's file does not hold.
		want, err := sql.Int(f.ctx, "SELECT count(*) FROM cus_case WHERE contact_id = ? AND (opener_id IS NULL OR opener_id <> ?)", subject, subject)
		if err != nil || want != 2 {
			t.Fatalf("ground truth %d %v", want, err)
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("status %s", s)
		}
		doc := f.export(t, id)
		if strings.Contains(doc, `title="Refund"`) || !strings.Contains(doc, `title="Own"`) {
			t.Fatalf("the subject's file holds another person's case, or not the subject's own")
		}
		line := fmt.Sprintf(`<table name="cus:case" link="contact" target="nms:recipient" count="%d"/>`, want)
		if !strings.Contains(doc, line) {
			t.Errorf("the file's coverage report lacks %s (%d case(s) point at the subject through the ordinary link contact):\n%s",
				line, want, tail(doc, 600))
		}
		v, err := f.env.Privacy.Request(f.ctx, operator, id)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, l := range v.Linked {
			if l.Schema == "cus:case" && l.Link == "contact" {
				got = l.RecordCount
			}
		}
		if got != want {
			t.Errorf("the console's coverage report counts %d case(s) linked through contact, plain SQL %d (report %+v)", got, want, v.Linked)
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestWriteDuringRuleChangeStaysReachable: README "Every stored form
// is reachable": values written through xtk:persist#Write are stored in the
// namespace rule's canonical form, and `namespace update --match` rewrites
// the field "at once". A Write that read the namespaces' rules just before
// another process (the command line, the console) changed defaultNamespace1
// to the email rule and rewrote the field stores its value under the old
// rule after the rewrite is over: "Ana.Write@Example.COM" stays in mixed
// case in a field every request now matches lower-cased, so no request can
// reach that person. The interleaving is made deterministic by running the
// update from the Write's clock, which persist reads after its rules and
// before its transaction.
func TestWriteDuringRuleChangeStaysReachable(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		var once sync.Once
		var updErr error
		now := func() time.Time {
			once.Do(func() {
				updErr = f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email})
			})
			return time.Now()
		}
		el := etree.NewElement("recipient")
		el.CreateAttr("xtkschema", "nms:recipient")
		el.CreateAttr("_operation", "insert")
		el.CreateAttr("email", "Ana.Write@Example.COM")
		el.CreateAttr("lastName", "Write")
		if err := persist.New(f.env.DB, f.env.Registry, now).Write(f.ctx, el); err != nil {
			t.Fatal(err)
		}
		if updErr != nil {
			t.Fatal(updErr)
		}
		// Plain SQL: the person is there, in a form the email rule's
		// requests (always lower case) never produce.
		stored, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE last_name = 'Write' AND email = ?", "Ana.Write@Example.COM")
		if err != nil {
			t.Fatal(err)
		}
		reachable, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", "ana.write@example.com")
		if err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", "Ana.Write@Example.COM", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE last_name = 'Write'")
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("request %s; %d row(s) of the person left (stored in the old rule's form: %d, in the email rule's form: %d): "+
				"a Write that read the rules before the update stored its value after the rewrite, where no request reaches it",
				f.status(t, id), left, stored, reachable)
		}
	})
}

// TestCleanupKeepsAConfirmedDelete: the cleanup destroys "files,
// keys, per-table counts and the reconciliation value after" the retention
// period; Config.Validate only refuses a retention shorter than the
// confirmation window, "a request waiting for its confirmation would lose
// its file". A two-step delete confirmed on the last days of the window
// whose delete attempt fails (a lost connection, a row added meanwhile:
// retryPending) is still an active, confirmed request, but its file is
// older than the retention: the cleanup purges it, blanking its
// reconciliation value, and the retries can never delete anything. The
// confirmed erasure is lost and the person's rows stay.
func TestCleanupKeepsAConfirmedDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		failures := 0
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Retention = 15 * 24 * time.Hour // = the confirmation window: accepted
			c.Failpoint = func(name string) error {
				if name == "delete-lookup" && failures < 2 {
					failures++
					return apperr.Errorf(apperr.Busy, "connection lost")
				}
				return nil
			}
		}})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("after collect: %s", s)
		}
		f.env.Clock.Advance(14*24*time.Hour + time.Hour)
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		// The scheduled runs, one a day: the first two delete attempts fail.
		for day := 0; day < 6; day++ {
			if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
				t.Logf("day %d: %v", day, err)
			}
			f.env.Clock.Advance(24 * time.Hour)
		}
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("confirmed delete %d is %s with reconciliation value %q and purged_at %v; the recipient is still there (plain SQL: %d row). Audit:\n%s",
				id, privacy.Status(r.Status), r.ReconciliationValue, r.PurgedAt, left, r.Audit)
		}
	})
}
