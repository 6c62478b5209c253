package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// J78's fix (migration 0019, PurgeResidue clears a mark only at the
// generation it read) keeps a mark whose table got a delete while the
// purge ran — but the mark keeps its first `since` ("A mark keeps its
// first time"), although the purge removed every residue older than its
// own start. With deletes committing during each purge (a busy
// deployment: another replica's delete run, a cleanup run), the mark is
// never cleared and its time never moves: ResidueMarks reports residue
// waiting since the first delete ever, and
// campaign_privacy_residue_oldest_age_seconds grows without bound — the
// metric README tells operators to alert on ("above a day: purges held by
// a long transaction or a lock") fires and stays on while every purge
// succeeds, hiding a real purge failure; and the table counts as stale for
// every run (a VACUUM FULL each time). Here two purges each see one delete
// during their rewrite: both earlier residues are gone from the files,
// yet the mark still dates from the first delete.
func TestResidueMarkTimeMovesWithThePurges(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	tokens := []string{"Firstresidue91c3", "Secondresidue4d7", "Thirdresidue8e21"}
	execAll(t, conn,
		"CREATE TABLE residue_age (id BIGINT PRIMARY KEY, v TEXT)",
		"INSERT INTO residue_age SELECT g, repeat('filler', 20) || g FROM generate_series(4, 400000) g",
		"INSERT INTO residue_age VALUES (1, repeat('filler', 20) || '2000000"+tokens[0]+"'), (2, repeat('filler', 20) || '2000000"+tokens[1]+"'), (3, repeat('filler', 20) || '2000000"+tokens[2]+"')",
	)
	id := newRequest(t, db, &store.Request{ReconciliationValue: "x@example.com", Type: 2, Regulation: 1})
	if got, err := db.ClaimRequests(ctx, []store.Status{0}, nil, 1, "w", 24*time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	del := func(rowID int64) error {
		return db.DeleteOwned(ctx, id, "w", []store.DeletePart{{Table: "residue_age", IDs: []int64{rowID},
			AuditLine: func(n int64) string { return fmt.Sprintf("%d record(s) deleted", n) }}}, 24*time.Hour, nil, false)
	}
	first := clock.Now()
	if err := del(1); err != nil {
		t.Fatal(err)
	}
	purge := store.ResiduePurge{Rewrite: true, Wait: 20 * time.Second}
	// A purge during whose rewrite the delete of rowID commits.
	purgeWithDelete := func(rowID int64) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, _, err := db.PurgeResidue(ctx, nil, clock.Now(), purge)
			done <- err
		}()
		deleted := make(chan error, 1)
		go func() {
			watch := storetest.SQLOf(t, db)
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				n, err := watch.Int(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'VACUUM (FULL, ANALYZE) "residue_age"%'`)
				if err != nil {
					deleted <- err
					return
				}
				if n > 0 {
					deleted <- del(rowID)
					return
				}
			}
			deleted <- fmt.Errorf("the purge's rewrite of residue_age was not seen")
		}()
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the purge: %v", err)
		}
	}
	clock.Advance(time.Hour)
	purgeWithDelete(2)
	clock.Advance(time.Hour)
	secondStart := clock.Now()
	purgeWithDelete(3)
	clock.Advance(time.Hour)

	if n := conn.PostgresFileCount(t, ctx, "residue_age", tokens[0], tokens[1]); n != 0 {
		t.Fatalf("the purges left the earlier rows in the files %d time(s)", n)
	}
	n, oldest, err := db.ResidueMarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d marks, want 1 (the third delete's residue is not purged yet)", n)
	}
	if oldest.Before(secondStart) {
		t.Fatalf("every residue older than the last purge's start (%s) is gone from the files, yet the mark says residue has waited since %s (the first delete, %v ago): a mark that a delete reaches during every purge is never cleared and its age only grows",
			secondStart.Format(time.RFC3339), oldest.UTC().Format(time.RFC3339), clock.Now().Sub(first))
	}
}
