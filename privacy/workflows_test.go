package privacy_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

var operator = &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}

// ownedTables are the tables of a demo recipient's data, and what each
// demo recipient has in them (see internal/demodata).
var ownedTables = map[string]int64{
	"nms_recipient": 1, "nms_broad_log_rcp": 3, "nms_tracking_log_rcp": 2, "nms_broad_log_event_histo": 1,
	"nms_rcp_grp_rel": 1, "nms_visitor": 1, "nms_proposition_visitor": 1, "nms_sub_histo": 2,
	"nms_subscription": 1, "nms_proposition_rcp": 1,
}

var sharedTables = []string{"nms_delivery", "nms_broad_log_msg", "nms_tracking_url", "nms_group", "nms_service"}

type fixture struct {
	env *servertest.Env
	ctx context.Context
}

func newFixture(t testing.TB, dialect string, opts servertest.Options) *fixture {
	env := servertest.New(t, dialect, opts)
	ctx := context.Background()
	g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 7}
	if _, _, err := g.Generate(ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, ctx: ctx}
}

func (f *fixture) create(t testing.TB, ns, value string, typ int64, confirm bool) int64 {
	t.Helper()
	id, err := f.env.Privacy.CreateRequestByName(f.ctx, operator, privacy.CreateRequest{
		NamespaceName: ns, ReconciliationValue: value, Type: typ, ConfirmDeletePending: confirm, DownloadURL: "http://x/nms/gdpr.jssp?id=",
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) run(t testing.TB, name string) privacy.Report {
	t.Helper()
	reps, err := f.env.Privacy.Run(f.ctx, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return reps[0]
}

func (f *fixture) status(t testing.TB, id int64) privacy.Status {
	t.Helper()
	r, err := f.env.DB.FindRequestByID(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return privacy.Status(r.Status)
}

// count counts a table's rows with plain SQL, not through the store.
func (f *fixture) count(t *testing.T, table string) int64 {
	t.Helper()
	n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) export(t *testing.T, id int64) string {
	t.Helper()
	_, r, err := f.env.Privacy.OpenExport(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func eachStore(t *testing.T, f func(t *testing.T, dialect string)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

func TestAccessRequest(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		if rep := f.run(t, privacy.Collect); rep.Processed != 1 || rep.Failed != 0 {
			t.Fatalf("collect: %v", rep)
		}
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("status %s", s)
		}
		doc := f.export(t, id)
		for _, want := range []string{
			`<gdprRequestData _cs=" ()" id="` + itoa(id) + `" reconciliationValue="'demo-3@example.com'">`,
			`<table name="nms:recipient">`, `email="demo-3@example.com"`, `<table name="nms:broadLogRcp">`,
			`recipient-id="3"`, `<table name="nms:trackingLogRcp">`, `<table name="nms:propositionVisitor">`,
			`<table name="nms:subHisto">`,
		} {
			if !strings.Contains(doc, want) {
				t.Errorf("export lacks %s:\n%s", want, doc)
			}
		}
		if strings.Contains(doc, "demo-2@example.com") || strings.Contains(doc, "demo-4@example.com") {
			t.Fatal("the export holds another person's data")
		}
		if strings.Count(doc, "<row ") != 14 {
			t.Fatalf("%d rows exported, want 14:\n%s", strings.Count(doc, "<row "), doc)
		}
		r, _ := f.env.DB.FindRequestByID(f.ctx, id)
		for _, line := range []string{"Collecting data in nms:recipient", "1 record(s) found in nms:recipient", "3 record(s) found in nms:broadLogRcp", "2 record(s) found in nms:subHisto"} {
			if !strings.Contains(r.Audit, line) {
				t.Errorf("audit lacks %q:\n%s", line, r.Audit)
			}
		}
		data, _ := f.env.DB.FindRequestData(f.ctx, id)
		if len(data) != 10 || data[0].Schema != "nms:recipient" {
			t.Fatalf("request data: %+v", data)
		}
		// Nothing changed in the data.
		if f.count(t, "nms_recipient") != 5 {
			t.Fatal("an access request deleted data")
		}
	})
}

func TestTwoStepDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		before := map[string]int64{}
		for table := range ownedTables {
			before[table] = f.count(t, table)
		}
		for _, table := range sharedTables {
			before[table] = f.count(t, table)
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("after collect: %s", s)
		}
		if !strings.Contains(f.export(t, id), `email="demo-2@example.com"`) {
			t.Fatal("the 2-step delete must first produce the file")
		}
		// Nothing is deleted before the confirmation.
		f.run(t, privacy.Delete)
		if f.count(t, "nms_recipient") != 5 {
			t.Fatal("deleted before confirmation")
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 {
			t.Fatalf("delete: %v", rep)
		}
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after delete: %s", s)
		}
		for table, per := range ownedTables {
			if got := f.count(t, table); got != before[table]-per {
				t.Errorf("%s: %d rows, want %d (exactly the subject's %d gone)", table, got, before[table]-per, per)
			}
		}
		for _, table := range sharedTables {
			if f.count(t, table) != before[table] {
				t.Errorf("%s changed: shared data must stay", table)
			}
		}
		if ids, _ := f.env.DB.FindIDs(f.ctx, "nms_recipient", "email", demodata.Email(2)); len(ids) != 0 {
			t.Fatal("the subject is still there")
		}
		r, _ := f.env.DB.FindRequestByID(f.ctx, id)
		for _, line := range []string{"Request needs to be confirmed before data is deleted", "Deletion confirmed by operator 'ana'.",
			"1 record(s) deleted in nms:recipient", "3 record(s) deleted in nms:broadLogRcp", "no record of the subject remains"} {
			if !strings.Contains(r.Audit, line) {
				t.Errorf("audit lacks %q:\n%s", line, r.Audit)
			}
		}
	})
}

func TestOneStepDeleteAndNotFound(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		del := f.create(t, "defaultNamespace2", "+491700000004", privacy.TypeDelete, false)
		none := f.create(t, "defaultNamespace1", "nobody@example.com", privacy.TypeAccess, false)
		wild := f.create(t, "defaultNamespace1", "demo-%@example.com", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, del); s != privacy.StatusDeletePending {
			t.Fatalf("one-step delete after collect: %s", s)
		}
		if s := f.status(t, none); s != privacy.StatusErrorDataNotFound {
			t.Fatalf("unknown subject: %s", s)
		}
		if s := f.status(t, wild); s != privacy.StatusErrorDataNotFound {
			t.Fatalf("a value with %% matched someone: %s", s)
		}
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, del); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("a one-step delete has no file: %v", err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, del); s != privacy.StatusComplete {
			t.Fatalf("after delete: %s", s)
		}
		if f.count(t, "nms_recipient") != 4 || f.count(t, "nms_broad_log_rcp") != 12 {
			t.Fatal("the one-step delete removed more or less than the subject")
		}
	})
}

func TestConfirmWindowAndCleanup(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		lapsed := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		access := f.create(t, "defaultNamespace1", demodata.Email(5), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		f.env.Clock.Advance(15*24*time.Hour + time.Minute)
		f.run(t, privacy.Delete)
		if s := f.status(t, lapsed); s != privacy.StatusError {
			t.Fatalf("unconfirmed after 15 days: %s", s)
		}
		if f.count(t, "nms_recipient") != 5 {
			t.Fatal("an unconfirmed delete deleted data")
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, lapsed); err == nil {
			t.Fatal("a lapsed request cannot be confirmed")
		}
		// Day 89 (a day and a minute before the date the retention ends:
		// the cleanup purges by date): the files are still there. Day 91:
		// gone, rows stay.
		f.env.Clock.Advance(74*24*time.Hour - 2*time.Minute)
		if rep := f.run(t, privacy.Cleanup); rep.Processed != 0 {
			t.Fatalf("cleanup too early: %v", rep)
		}
		f.export(t, access)
		f.env.Clock.Advance(2 * 24 * time.Hour)
		if rep := f.run(t, privacy.Cleanup); rep.Processed != 2 {
			t.Fatalf("cleanup: %v", rep)
		}
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, access); err != privacy.ErrPurged {
			t.Fatalf("after cleanup: %v", err)
		}
		r, _ := f.env.DB.FindRequestByID(f.ctx, access)
		if r.ReconciliationValue != "" || privacy.Status(r.Status) != privacy.StatusComplete || !strings.Contains(r.Audit, "retention period") {
			t.Fatalf("purged request: %+v", r)
		}
		if data, _ := f.env.DB.FindRequestData(f.ctx, access); len(data) != 0 {
			t.Fatal("per-table counts survived the cleanup")
		}
		// A second cleanup finds nothing more to do (security-bar.md #101).
		if rep := f.run(t, privacy.Cleanup); rep.Processed != 0 || rep.Failed != 0 {
			t.Fatalf("second cleanup: %+v", rep)
		}
	})
}

// TestConcurrentConfirmations (security-bar.md #99): ten confirmations of
// one two-step delete at once: one succeeds, the others are refused, and
// the delete runs once.
func TestConcurrentConfirmations(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id) == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d of 10 concurrent confirmations succeeded", ok.Load())
		}
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 {
			t.Fatalf("delete: %+v", rep)
		}
		if rep := f.run(t, privacy.Delete); rep.Processed != 0 {
			t.Fatalf("a second delete run: %+v", rep)
		}
		r, _ := f.env.DB.FindRequestByID(f.ctx, id)
		if privacy.Status(r.Status) != privacy.StatusComplete || strings.Count(r.Audit, "record(s) deleted in nms:recipient") != 1 {
			t.Fatalf("after the delete: %s\n%s", privacy.Status(r.Status), r.Audit)
		}
	})
}

func TestRetryThenError(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		// A wrong-sized export key makes every export fail.
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) { c.ExportKey = []byte("short"); c.MaxAttempts = 3 }})
		id := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeAccess, false)
		for attempt := 1; attempt <= 3; attempt++ {
			if rep := f.run(t, privacy.Collect); rep.Failed != 1 {
				t.Fatalf("attempt %d: %v", attempt, rep)
			}
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			if r.RetryCount != attempt {
				t.Fatalf("retryCount %d, want %d", r.RetryCount, attempt)
			}
			if attempt < 3 {
				if privacy.Status(r.Status) != privacy.StatusRetryPending {
					t.Fatalf("status %s", privacy.Status(r.Status))
				}
				if rep := f.run(t, privacy.Collect); rep.Failed+rep.Processed != 0 {
					t.Fatal("retried before its back-off")
				}
				f.env.Clock.Advance(time.Hour)
			}
		}
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("after the last attempt: %s", s)
		}
	})
}

// TestResumeAfterCrash: a worker stops in the middle of a delete (its
// context cancelled right after its first delete batch, so nothing after
// that point runs); the next run takes the request back at once (a stopped
// run gives back what it did not finish, J76) and finishes exactly. A
// crash, which gives nothing back, waits for the lease: cmd's kill -9
// tests.
func TestResumeAfterCrash(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		// The worker "dies" right after its first delete batch: its context
		// is cancelled there, so nothing after that point runs (the kill -9
		// test of cmd does the same with a real process).
		crashCtx, crash := context.WithCancel(context.Background())
		crashOnce := true
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.DeleteBatch = 1
			c.Failpoint = func(name string) error {
				if name == "delete-after-batch" && crashOnce {
					crashOnce = false
					crash()
				}
				return nil
			}
		}})
		id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if _, err := f.env.Privacy.Run(crashCtx, privacy.Delete); err == nil {
			t.Fatal("the crashed run reported success")
		}
		if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
			t.Fatalf("after the crash: %s", s)
		}
		if f.count(t, "nms_recipient")+f.count(t, "nms_broad_log_rcp") != 5+15 || f.count(t, "nms_proposition_rcp") != 4 {
			t.Fatal("the first batch (one row of the last table) was not committed alone")
		}
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 {
			t.Fatalf("resume: %v", rep)
		}
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after resume: %s", s)
		}
		if f.count(t, "nms_recipient") != 4 || f.count(t, "nms_tracking_log_rcp") != 8 {
			t.Fatal("the resumed delete is not exact")
		}
	})
}

// TestCustomSchemasFollowed: custom tables linked to the recipient (and to
// each other) with own links are collected and deleted with it, multi-hop.
func TestCustomSchemasFollowed(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: os.DirFS("../examples/schemas")})
		before := map[string]int64{"cus_transaction": f.count(t, "cus_transaction"), "cus_transaction_detail": f.count(t, "cus_transaction_detail")}
		if before["cus_transaction"] != 10 || before["cus_transaction_detail"] != 10 {
			t.Fatalf("demo data in the custom tables: %v", before)
		}
		access := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeAccess, false)
		del := f.create(t, "defaultNamespace1", demodata.Email(5), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, access)
		for _, want := range []string{`<table name="cus:transaction">`, `<table name="cus:transactionDetail">`, `product="Coffee beans"`} {
			if !strings.Contains(doc, want) {
				t.Fatalf("export lacks %s:\n%s", want, doc)
			}
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, del); s != privacy.StatusComplete {
			t.Fatalf("delete: %s", s)
		}
		if f.count(t, "cus_transaction") != 8 || f.count(t, "cus_transaction_detail") != 8 {
			t.Fatalf("custom tables after the delete: %d %d", f.count(t, "cus_transaction"), f.count(t, "cus_transaction_detail"))
		}
	})
}

// TestLargeSubject: a subject with 12,000 delivery logs and as many
// tracking logs (a level-2 hop over 12,000 parents) is collected and deleted
// exactly — the lookups split their bound values over several statements.
func TestLargeSubject(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		now := f.env.Clock.Now()
		const n = 12_000
		if err := f.env.DB.InsertRows(f.ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(100), "big@example.com"}}); err != nil {
			t.Fatal(err)
		}
		var logs, tracks [][]any
		for i := int64(1); i <= n; i++ {
			logs = append(logs, []any{1000 + i, int64(100), "big@example.com", now})
			tracks = append(tracks, []any{1000 + i, 1000 + i, now})
		}
		if err := f.env.DB.InsertRows(f.ctx, "nms_broad_log_rcp", []string{"id", "recipient_id", "address", "event_date"}, logs); err != nil {
			t.Fatal(err)
		}
		if err := f.env.DB.InsertRows(f.ctx, "nms_tracking_log_rcp", []string{"id", "broad_log_id", "log_date"}, tracks); err != nil {
			t.Fatal(err)
		}
		access := f.create(t, "defaultNamespace1", "big@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		if doc := f.export(t, access); strings.Count(doc, "<row ") != 1+2*n {
			t.Fatalf("%d rows exported, want %d", strings.Count(doc, "<row "), 1+2*n)
		}
		del := f.create(t, "defaultNamespace1", "big@example.com", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 {
			t.Fatalf("delete: %v", rep)
		}
		if s := f.status(t, del); s != privacy.StatusComplete {
			t.Fatalf("status %s", s)
		}
		if f.count(t, "nms_broad_log_rcp") != 15 || f.count(t, "nms_tracking_log_rcp") != 10 || f.count(t, "nms_recipient") != 5 {
			t.Fatal("the delete of a large subject is not exact")
		}
	})
}

// TestWorkersNeverDoubleProcess: several workers on one database collect
// at once; each request is processed exactly once.
func TestWorkersNeverDoubleProcess(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		var ids []int64
		for i := 0; i < 30; i++ {
			ids = append(ids, f.create(t, "defaultNamespace1", demodata.Email(int64(1+i)), privacy.TypeAccess, false))
		}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			svc := privacy.New(f.env.DB, f.env.Registry, privacy.Config{Worker: "w" + itoa(int64(w)), ExportKey: servertest.Key[:32], Now: f.env.Clock.Now})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := svc.Run(f.ctx, privacy.Collect); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for _, id := range ids {
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			if n := strings.Count(r.Audit, "Processing request data...."); n != 1 || privacy.Status(r.Status).Active() {
				t.Fatalf("request %d processed %d times, status %s", id, n, privacy.Status(r.Status))
			}
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestExportKeyRotation: after the master key is rotated, files wrapped
// under the previous key still open while it is listed; once it is removed
// they do not, and nothing else changes.
func TestExportKeyRotation(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		want := f.export(t, id)
		oldKey := servertest.Key[:32]
		newKey := []byte("a-new-export-master-key-32-bytes")
		rotated := privacy.New(f.env.DB, f.env.Registry, privacy.Config{ExportKey: newKey, PreviousExportKeys: [][]byte{oldKey}, Now: f.env.Clock.Now})
		_, r, err := rotated.OpenExport(f.ctx, id)
		if err != nil {
			t.Fatalf("a file of the previous key does not open after the rotation: %v", err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(got) != want {
			t.Fatalf("the file reads differently after the rotation (%v)", err)
		}
		retired := privacy.New(f.env.DB, f.env.Registry, privacy.Config{ExportKey: newKey, Now: f.env.Clock.Now})
		if _, _, err := retired.OpenExport(f.ctx, id); apperr.CodeOf(err) != apperr.Internal {
			t.Fatalf("a file of a retired key opens: %v", err)
		}
	})
}

// TestDiskFullDuringExport (security-bar.md #93): the store refuses a chunk
// of the file as a full disk would. The collect fails, no part of the file
// stays behind, the request waits for its retry (nothing is lost), and once
// there is room again the retry produces the whole file.
func TestDiskFullDuringExport(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var full atomic.Bool
		full.Store(true)
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Failpoint = func(name string) error {
				if name == "export-chunk" && full.Load() {
					return fmt.Errorf("write export chunk: %w", syscall.ENOSPC)
				}
				return nil
			}
		}})
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeAccess, false)
		if rep := f.run(t, privacy.Collect); rep.Failed != 1 || rep.Processed != 0 {
			t.Fatalf("collect on a full disk: %+v", rep)
		}
		if s := f.status(t, id); s != privacy.StatusRetryPending {
			t.Fatalf("after the failed collect: %s", s)
		}
		if _, err := f.env.DB.FindExport(f.ctx, id); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("an incomplete export stayed behind: %v", err)
		}
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, id); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("download of a failed collect: %v", err)
		}

		full.Store(false)
		f.env.Clock.Advance(time.Hour)
		if rep := f.run(t, privacy.Collect); rep.Processed != 1 {
			t.Fatalf("retry once there is room: %+v", rep)
		}
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after the retry: %s", s)
		}
		if file := f.export(t, id); !strings.Contains(file, demodata.Email(2)) || !strings.HasSuffix(file, "</gdprRequestData>\n") {
			t.Fatalf("the file after the retry is not whole: %.200s", file)
		}
	})
}

// TestExportNeighboursAndTampering (security-bar.md #83): recipients whose
// email differs from the subject's only by case, spaces or a +tag are not
// in the subject's file; the stored file holds no plaintext of it; and a
// file whose ciphertext was altered at rest is refused, never served.
func TestExportNeighboursAndTampering(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		subject := demodata.Email(2)
		neighbours := []string{strings.ToUpper(subject), " " + subject, subject + " ", strings.Replace(subject, "@", "+tag@", 1)}
		for i, email := range neighbours {
			if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9001 + i), "email": email}); err != nil {
				t.Fatal(err)
			}
		}
		id := f.create(t, "defaultNamespace1", subject, privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, id)
		if strings.Count(doc, `<table name="nms:recipient">`) != 1 || strings.Count(doc, "email=") != 1 {
			t.Fatalf("the file holds more than the subject's recipient row:\n%s", doc)
		}
		for i := range neighbours {
			if strings.Contains(doc, `id="`+itoa(int64(9001+i))+`"`) {
				t.Fatalf("neighbour %q is in the subject's file", neighbours[i])
			}
		}

		var chunks [][]byte
		err := f.env.DB.ExportChunks(f.ctx, id, 0, 100, func(_ int, sealed []byte) error {
			chunks = append(chunks, bytes.Clone(sealed))
			return nil
		})
		if err != nil || len(chunks) == 0 {
			t.Fatalf("stored chunks: %d %v", len(chunks), err)
		}
		for _, c := range chunks {
			if bytes.Contains(c, []byte(subject)) || bytes.Contains(c, []byte("gdprRequestData")) {
				t.Fatal("the stored file holds plaintext")
			}
		}
		tampered := bytes.Clone(chunks[0])
		tampered[len(tampered)/2] ^= 1
		if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "UPDATE privacy_export_chunks SET data = ? WHERE request_id = ? AND seq = ?", tampered, id, 0); err != nil {
			t.Fatal(err)
		}
		// Refused when opened (the download answers 500 before sending
		// anything), not half-way.
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, id); apperr.CodeOf(err) != apperr.Internal {
			t.Fatalf("a tampered file opens: %v", err)
		}
	})
}

// TestUnicodeValues (security-bar.md #67): values with full-width characters
// or a 4-byte emoji are matched exactly (after NFC) and come back byte for
// byte in the file; the full-width form does not match the ASCII one.
func TestUnicodeValues(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		values := []string{"ｊｏｈｎ＠example.com", "jo😀hn@example.com", "john@example.com"}
		for i, v := range values {
			if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9101 + i), "email": v}); err != nil {
				t.Fatal(err)
			}
		}
		for i, v := range values[:2] {
			id := f.create(t, "defaultNamespace1", v, privacy.TypeAccess, false)
			f.run(t, privacy.Collect)
			doc := f.export(t, id)
			if !strings.Contains(doc, `email="`+v+`"`) || !strings.Contains(doc, `id="`+itoa(int64(9101+i))+`"`) || strings.Count(doc, "email=") != 1 {
				t.Fatalf("%q: the file does not hold exactly its recipient:\n%s", v, doc)
			}
		}
	})
}

// TestCrashAfterLastBatch (security-bar.md #88): the worker dies right after
// the batch that deleted the subject's last row, before the request is
// marked complete. After the lease the re-run finds nothing left, deletes
// nothing more, and completes the request once.
func TestCrashAfterLastBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		crashCtx, crash := context.WithCancel(context.Background())
		var f *fixture
		crashed := false
		f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			// A subject larger than one delete batch (14 rows) is deleted
			// in transactions of its own before its completion; one that
			// fits joins the worker's batch commit, all or nothing
			// (TestBatchCommitAllOrNothing).
			c.DeleteBatch = 13
			c.Failpoint = func(name string) error {
				// The recipient row goes last (children first): once it is
				// gone, that was the last batch.
				if name == "delete-after-batch" && !crashed && f.count(t, "nms_recipient") == 4 {
					crashed = true
					crash()
				}
				return nil
			}
		}})
		id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if _, err := f.env.Privacy.Run(crashCtx, privacy.Delete); err == nil || !crashed {
			t.Fatalf("the crashed run: %v (crashed %v)", err, crashed)
		}
		if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
			t.Fatalf("after the crash: %s", s)
		}
		before := map[string]int64{}
		for table := range ownedTables {
			before[table] = f.count(t, table)
		}
		f.env.Clock.Advance(16 * time.Minute)
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 || rep.Failed != 0 {
			t.Fatalf("re-run: %+v", rep)
		}
		r, _ := f.env.DB.FindRequestByID(f.ctx, id)
		if privacy.Status(r.Status) != privacy.StatusComplete {
			t.Fatalf("after the re-run: %s", privacy.Status(r.Status))
		}
		for table, n := range before {
			if f.count(t, table) != n {
				t.Fatalf("the re-run deleted more rows in %s", table)
			}
		}
		if rep := f.run(t, privacy.Delete); rep.Processed != 0 {
			t.Fatalf("completed twice: %+v", rep)
		}
	})
}

// TestExportEscaping (security-bar.md #81): markup in stored data — a
// script tag, a CDATA end, ampersands, quotes — is escaped in the file,
// which stays well-formed XML and gives the values back exactly.
func TestExportEscaping(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		hostile := `<script>alert("x")</script> ]]> & 'quoted' <!-- -->`
		if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9201), "email": "escape@example.com", "first_name": hostile}); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", "escape@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, id)
		if strings.Contains(doc, "<script>") || strings.Contains(doc, "]]>") {
			t.Fatalf("markup unescaped in the file:\n%s", doc)
		}
		dec := xml.NewDecoder(strings.NewReader(doc))
		found := false
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("the file is not well-formed XML: %v\n%s", err, doc)
			}
			if se, ok := tok.(xml.StartElement); ok {
				for _, a := range se.Attr {
					if a.Name.Local == "firstName" && a.Value == hostile {
						found = true
					}
				}
			}
		}
		if !found {
			t.Fatalf("the value does not come back exactly:\n%s", doc)
		}
	})
}

// TestDedupeKeepsConfirmApart (defect 4): a two-step delete and a one-step
// delete of the same subject are different requests; deduplication must
// not hand one the other's id.
func TestDedupeKeepsConfirmApart(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		twoStep := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		oneStep := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, false)
		if twoStep == oneStep {
			t.Fatalf("requests differing in confirmDeletePending got the same id %d", twoStep)
		}
		if again := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true); again != twoStep {
			t.Fatalf("an identical request got a new id: %d, want %d", again, twoStep)
		}
	})
}

// TestCleanupKeepsPendingReview (defect 6): a two-step delete waiting for
// its confirmation keeps its file until its deadline, however short the
// retention; the reviewer must be able to read what will be deleted.
func TestCleanupKeepsPendingReview(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) { c.Retention = 24 * time.Hour }})
		id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		f.env.Clock.Advance(14 * 24 * time.Hour)
		if rep := f.run(t, privacy.Cleanup); rep.Processed != 0 {
			t.Fatalf("cleanup purged a pending review: %v", rep)
		}
		f.export(t, id)
		if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("status: %s", s)
		}
		if rows, _ := f.env.DB.FindReviewedRows(f.ctx, id); len(rows) != 14 {
			t.Fatalf("reviewed set: %d rows, want the subject's 14", len(rows))
		}
		// Past the deadline the request lapses; then the file goes.
		f.env.Clock.Advance(2 * 24 * time.Hour)
		f.run(t, privacy.Collect)
		if rep := f.run(t, privacy.Cleanup); rep.Processed != 1 {
			t.Fatalf("cleanup after the deadline: %v", rep)
		}
		if rows, err := f.env.DB.FindReviewedRows(f.ctx, id); err != nil || len(rows) != 0 {
			t.Fatalf("the reviewed set survived the cleanup: %d %v", len(rows), err)
		}
	})
}

// TestRetentionShorterThanConfirmWindow (defect 6): the configuration is
// refused, naming both settings.
func TestRetentionShorterThanConfirmWindow(t *testing.T) {
	err := privacy.Config{Retention: 10 * 24 * time.Hour}.Validate()
	if err == nil || !strings.Contains(err.Error(), "CP_RETENTION") || !strings.Contains(err.Error(), "confirmation window") {
		t.Fatalf("Validate: %v", err)
	}
	if err := (privacy.Config{Retention: 90 * 24 * time.Hour}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (privacy.Config{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

// noteSchema is a custom table that owns itself: a note belongs to its
// recipient, and a reply belongs to the note it answers (revIntegrity="own"
// on both links), so a subject's notes are found at every depth.
const noteSchema = `<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="note" label="Notes">
  <element name="note" autopk="true" label="Notes">
    <attribute name="body" type="string" length="64" label="Body"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own" label="Recipient"/>
    <element name="parent" type="link" target="cus:note" revIntegrity="own" label="Answers"/>
  </element>
</schema>`

// addNotes gives the subject (recipient subj) a thread three deep (101 ←
// 102 ← 103) and a cycle entered from the recipient (301 ← 302 ← 303 ←
// 301), and another recipient a note and its reply (401 ← 402).
func addNotes(t *testing.T, f *fixture, subj, other int64) {
	t.Helper()
	for _, n := range []struct{ id, rcp, parent int64 }{
		{101, subj, 0}, {102, 0, 101}, {103, 0, 102},
		{301, subj, 303}, {302, 0, 301}, {303, 0, 302},
		{401, other, 0}, {402, 0, 401},
	} {
		row := map[string]any{"id": n.id, "body": "note-" + itoa(n.id)}
		if n.rcp != 0 {
			row["recipient_id"] = n.rcp
		}
		if n.parent != 0 {
			row["parent_id"] = n.parent
		}
		if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "cus_note", row); err != nil {
			t.Fatal(err)
		}
	}
}

func recipientID(t *testing.T, f *fixture, n int64) int64 {
	t.Helper()
	ids, err := f.env.DB.FindIDs(f.ctx, "nms_recipient", "email", demodata.Email(n))
	if err != nil || len(ids) != 1 {
		t.Fatalf("recipient %d: %v %v", n, ids, err)
	}
	return ids[0]
}

// TestSelfOwningLinkFollowed (defect 1): the export has the subject's notes
// at every depth, cycle included, and a one-step delete leaves none of
// them; everybody else's rows stay.
func TestSelfOwningLinkFollowed(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: fstest.MapFS{"cus_note.xml": {Data: []byte(noteSchema)}}})
		if _, err := f.env.Registry.OwnedBy("nms:recipient"); err != nil {
			t.Fatalf("OwnedBy with a self link: %v", err)
		}
		addNotes(t, f, recipientID(t, f, 2), recipientID(t, f, 3))
		tables := append([]string{"cus_note"}, sharedTables...)
		for table := range ownedTables {
			tables = append(tables, table)
		}
		before := map[string]int64{}
		for _, table := range tables {
			before[table] = f.count(t, table)
		}
		access := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeAccess, false)
		del := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, access)
		for _, id := range []string{"101", "102", "103", "301", "302", "303"} {
			if !strings.Contains(doc, `"note-`+id+`"`) {
				t.Fatalf("export lacks note %s:\n%s", id, doc)
			}
		}
		if strings.Contains(doc, "note-40") {
			t.Fatalf("export has another recipient's notes:\n%s", doc)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, del); s != privacy.StatusComplete {
			t.Fatalf("delete: %s", s)
		}
		for _, table := range tables {
			want := before[table] - ownedTables[table]
			if table == "cus_note" {
				want = before[table] - 6
			}
			if got := f.count(t, table); got != want {
				t.Errorf("%s: %d rows after the delete, want %d (before %d)", table, got, want, before[table])
			}
		}
		if n, _ := f.env.DB.CountRows(f.ctx, "cus_note", "parent_id", int64(401)); n != 1 {
			t.Errorf("the other recipient's reply: %d", n)
		}
	})
}

// TestConfirmedDeleteIsBoundToTheReview (defect 5): a confirmed two-step
// delete removes exactly the rows the operator reviewed. A row that came
// to match the value after the review is not deleted unseen: it becomes a
// new review. A reviewed row that no longer matches is deleted as
// reviewed, and the audit says so.
func TestConfirmedDeleteIsBoundToTheReview(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		t.Run("new match", func(t *testing.T) {
			f := newFixture(t, dialect, servertest.Options{})
			reviewed, other := recipientID(t, f, 1), recipientID(t, f, 3)
			id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
			f.run(t, privacy.Collect)
			if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "UPDATE nms_recipient SET email = ? WHERE id = ?", demodata.Email(1), other); err != nil {
				t.Fatal(err)
			}
			if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
				t.Fatal(err)
			}
			f.run(t, privacy.Delete)
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_recipient", "id", reviewed); n != 0 {
				t.Error("the reviewed recipient was not deleted")
			}
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_recipient", "id", other); n != 1 {
				t.Error("an unreviewed recipient was deleted")
			}
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_broad_log_rcp", "recipient_id", other); n != ownedTables["nms_broad_log_rcp"] {
				t.Errorf("the unreviewed recipient's logs: %d", n)
			}
			if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
				t.Fatalf("after the delete: %s", s)
			}
			doc := f.export(t, id)
			if !strings.Contains(doc, `id="`+itoa(other)+`"`) || strings.Contains(doc, `<row email="`+demodata.Email(1)+`" id="`+itoa(reviewed)+`"`) {
				t.Fatalf("the new file is not the unreviewed rows:\n%s", doc)
			}
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			if !strings.Contains(r.Audit, "were not reviewed") {
				t.Fatalf("audit:\n%s", r.Audit)
			}
			// Confirmed again, the new review is deleted and the request completes.
			if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
				t.Fatal(err)
			}
			f.run(t, privacy.Delete)
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Fatalf("after the second delete: %s", s)
			}
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_recipient", "id", other); n != 0 {
				t.Error("the second review was not deleted")
			}
		})
		t.Run("no longer matches", func(t *testing.T) {
			f := newFixture(t, dialect, servertest.Options{})
			reviewed := recipientID(t, f, 1)
			before := f.count(t, "nms_recipient")
			id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
			f.run(t, privacy.Collect)
			if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "UPDATE nms_recipient SET email = ? WHERE id = ?", "changed@example.com", reviewed); err != nil {
				t.Fatal(err)
			}
			if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
				t.Fatal(err)
			}
			f.run(t, privacy.Delete)
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Fatalf("after the delete: %s", s)
			}
			if f.count(t, "nms_recipient") != before-1 {
				t.Fatal("the reviewed recipient was not deleted")
			}
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_broad_log_rcp", "recipient_id", reviewed); n != 0 {
				t.Fatalf("the reviewed recipient's logs: %d left", n)
			}
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			if !strings.Contains(r.Audit, "reviewed record(s) no longer matched the value and were deleted as reviewed") {
				t.Fatalf("audit:\n%s", r.Audit)
			}
		})
		t.Run("new child of a reviewed row", func(t *testing.T) {
			// The reviewed recipient's e-mail changes away, then a delivery
			// log is added for it: the log was not reviewed, so it goes to
			// a new review instead of failing the sweep or being deleted
			// unseen.
			f := newFixture(t, dialect, servertest.Options{})
			reviewed := recipientID(t, f, 1)
			id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
			f.run(t, privacy.Collect)
			if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "UPDATE nms_recipient SET email = ? WHERE id = ?", "changed@example.com", reviewed); err != nil {
				t.Fatal(err)
			}
			if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "INSERT INTO nms_broad_log_rcp (id, recipient_id, address) VALUES (?, ?, ?)", 990001, reviewed, "late@example.com"); err != nil {
				t.Fatal(err)
			}
			if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
				t.Fatal(err)
			}
			f.run(t, privacy.Delete)
			if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
				t.Fatalf("after the delete: %s", s)
			}
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_broad_log_rcp", "id", int64(990001)); n != 1 {
				t.Fatal("the unreviewed log was deleted unseen")
			}
			if doc := f.export(t, id); !strings.Contains(doc, `id="990001"`) {
				t.Fatalf("the new file lacks the unreviewed log:\n%s", doc)
			}
			if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
				t.Fatal(err)
			}
			f.run(t, privacy.Delete)
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Fatalf("after the second delete: %s", s)
			}
			if n, _ := f.env.DB.CountRows(f.ctx, "nms_broad_log_rcp", "recipient_id", reviewed); n != 0 {
				t.Fatalf("%d log(s) of the reviewed recipient left", n)
			}
		})
	})
}
