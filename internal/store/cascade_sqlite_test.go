package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestCascadeTargetsSQLiteNamesFoldASCII: SQLite folds the case of ASCII
// letters only in names, so "rv_Note_Ä" and "rv_note_ä" are two tables;
// both cascade a delete from the purged table and both are named (a
// Unicode case folding took the second for the first and left it out of
// the purge's record).
func TestCascadeTargetsSQLiteNamesFoldASCII(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, nil)
	conn := storetest.SQLOf(t, db)
	for _, q := range []string{
		"CREATE TABLE rvw_parent_91c (id INTEGER PRIMARY KEY)",
		`CREATE TABLE "rv_Note_Ä" (id INTEGER PRIMARY KEY, p INTEGER REFERENCES rvw_parent_91c (id) ON DELETE CASCADE)`,
		`CREATE TABLE "rv_note_ä" (id INTEGER PRIMARY KEY, p INTEGER REFERENCES rvw_parent_91c (id) ON DELETE CASCADE)`,
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// SQLite really holds two tables: a row in each, both cascade away.
	for _, q := range []string{
		"INSERT INTO rvw_parent_91c VALUES (1)",
		`INSERT INTO "rv_Note_Ä" VALUES (1, 1)`,
		`INSERT INTO "rv_note_ä" VALUES (1, 1)`,
		"DELETE FROM rvw_parent_91c WHERE id = 1",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if n, err := conn.Int(ctx, `SELECT (SELECT count(*) FROM "rv_Note_Ä") + (SELECT count(*) FROM "rv_note_ä")`); err != nil || n != 0 {
		t.Fatalf("the cascades did not delete from both tables: %d %v", n, err)
	}
	var cascaded []string
	if _, _, err := db.PurgeResidue(ctx, []string{"rvw_parent_91c"}, time.Now(), store.ResiduePurge{Cascaded: &cascaded}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rv_Note_Ä", "rv_note_ä"} {
		if !slices.Contains(cascaded, want) {
			t.Errorf("the purge's record does not name %q, into which the delete cascaded: named %q", want, cascaded)
		}
	}
}
