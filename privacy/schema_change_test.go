package privacy_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// noteNotOwned is noteSchema after a data-model change: the notes refer to
// the recipient through an ordinary link (no owning integrity).
const noteNotOwned = `<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="note" label="Notes">
  <element name="note" autopk="true" label="Notes">
    <attribute name="body" type="string" length="64" label="Body"/>
    <element name="recipient" type="link" target="nms:recipient" label="Recipient"/>
    <element name="parent" type="link" target="cus:note" revIntegrity="own" label="Answers"/>
  </element>
</schema>`

// TestSchemaChangeWhileDeleteInProgress: a one-step delete whose
// rows are all deleted and checked waits, deleteInProgress, for a residue
// purge that did not finish (a reader held the WAL). The service restarts
// with a data model where the subject's notes are no longer owned (schema
// sync). Nothing of the subject is left to delete (plain SQL); the next
// runs must purge and complete the request (README "Complete means
// purged": the next run finds nothing left to delete, purges and
// completes), not fail it until it ends in error.
func TestSchemaChangeWhileDeleteInProgress(t *testing.T) {
	env1 := servertest.New(t, store.SQLite, servertest.Options{Schemas: fstest.MapFS{"cus_note.xml": {Data: []byte(noteSchema)}}})
	f := &fixture{env: env1, ctx: t.Context()}
	g := &demodata.Generator{DB: env1.DB, Registry: env1.Registry, Seed: 7}
	if _, _, err := g.Generate(f.ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
	addNotes(t, f, recipientID(t, f, 2), recipientID(t, f, 3))
	cfg := storetest.ConfigOf(t, env1.DB)
	id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
	f.run(t, privacy.Collect)
	// A reader holds the WAL: the run's TRUNCATE checkpoint cannot finish.
	reader, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, store.SQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.BeginTx(f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(f.ctx, "SELECT count(*) FROM nms_recipient").Scan(&n); err != nil {
		t.Fatal(err)
	}
	_, runErr := env1.Privacy.Run(f.ctx, privacy.Delete)
	tx.Rollback()
	if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
		t.Fatalf("status %s (run: %v), want deleteInProgress: the purge should not have finished", s, runErr)
	}
	conn := storetest.SQLOf(t, env1.DB)
	left, err := conn.Int(f.ctx, "SELECT (SELECT count(*) FROM nms_recipient WHERE email = ?) + (SELECT count(*) FROM cus_note WHERE id IN (101,102,103,301,302,303))", demodata.Email(2))
	if err != nil || left != 0 {
		t.Fatalf("%d row(s) of the subject left (%v)", left, err)
	}
	// Restart on the same database with the changed data model.
	env2 := servertest.New(t, store.SQLite, servertest.Options{DB: env1.DB, Schemas: fstest.MapFS{"cus_note.xml": {Data: []byte(noteNotOwned)}}})
	f2 := &fixture{env: env2, ctx: f.ctx}
	for range 6 {
		env1.Clock.Advance(48 * 3600 * 1e9)
		env2.Clock.Advance(48 * 3600 * 1e9)
		_, _ = env2.Privacy.Run(f.ctx, privacy.Delete)
		if s := f2.status(t, id); s == privacy.StatusComplete || s == privacy.StatusError {
			break
		}
	}
	if s := f2.status(t, id); s != privacy.StatusComplete {
		r, _ := env2.DB.FindRequestByID(f.ctx, id)
		t.Fatalf("status %s with nothing of the subject left to delete; audit tail:\n%s", s, tail(r.Audit, 600))
	}
}
