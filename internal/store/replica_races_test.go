package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestConcurrentMigrateOnFreshDatabase: two replicas started together on an
// empty database (a deployment's first start, a Kubernetes rollout of two
// pods) both run Migrate. Migrate documents "On PostgreSQL an advisory lock
// serialises replicas that start together", but its first statement,
// CREATE TABLE IF NOT EXISTS schema_migrations, runs before that lock: two
// sessions running it at once both find no table, both insert the table's
// type into pg_type, and the second fails with
// `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`
// (SQLSTATE 23505). The replica then exits at start ("migrate: create
// schema_migrations: ...") — a crash loop on a first deployment. Each round
// takes a fresh schema; both must succeed every time.
func TestConcurrentMigrateOnFreshDatabase(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			rounds := 15
			if dialect == store.SQLite {
				rounds = 3
			}
			for round := 0; round < rounds; round++ {
				cfg := storetest.Config(t, dialect)
				var dbs [2]*store.DB
				for i := range dbs {
					db, err := store.Open(ctx, cfg)
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					dbs[i] = db
				}
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					errs  [2]error
				)
				for i, db := range dbs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						mctx, cancel := context.WithTimeout(ctx, time.Minute)
						defer cancel()
						_, errs[i] = db.Migrate(mctx)
					}()
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d: replica %d failed to migrate a fresh database started together with another: %v", round, i, err)
					}
				}
				latest, _ := dbs[0].LatestVersion()
				if v, err := dbs[1].Version(ctx); err != nil || v != latest {
					t.Fatalf("round %d: version %d (%v), want %d", round, v, err, latest)
				}
			}
		})
	}
}

// TestResidueMarkOfADeleteDuringAPurgeSurvives: the residue marks
// (privacy_residue) are how a delete whose run dies before its purge gets
// purged by a later run. markResidue keeps an existing mark's time (ON
// CONFLICT DO NOTHING), and PurgeResidue clears, after its vacuums, every
// mark of a purged table dated before the purge began. So a delete that
// commits while a purge of the same table is under way — after that
// table's VACUUM FULL, before the clear (here: the delete waits on the
// vacuum's lock, then commits while the purge finishes) — merges into the
// old mark, and the purge then clears it. Its dead row is in the table's
// file, and no mark is left: if that delete's own run dies before its own
// purge (kill -9, the case the marks exist for), no later run ever purges
// the table, and its request completes after a re-run ("Residue purged")
// with the erased value still in PostgreSQL's files. The comment in
// PurgeResidue ("A mark made after the purge began stays") holds only for
// a new mark, not for one merged into an older one. Checked on the files.
func TestResidueMarkOfADeleteDuringAPurgeSurvives(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	const oldToken, newToken = "Oldresidue7f3a91", "Newresidue2b8c44"
	execAll(t, conn,
		"CREATE TABLE residue_race (id BIGINT PRIMARY KEY, v TEXT)",
		// Enough rows that its rewrite takes a moment.
		"INSERT INTO residue_race SELECT g, repeat('filler', 20) || g FROM generate_series(3, 400000) g",
		// Values that sort among the fillers: not a statistics bound.
		"INSERT INTO residue_race VALUES (1, repeat('filler', 20) || '2000000"+oldToken+"'), (2, repeat('filler', 20) || '2000000"+newToken+"')",
	)
	id := newRequest(t, db, &store.Request{ReconciliationValue: "x@example.com", Type: 2, Regulation: 1})
	if got, err := db.ClaimRequests(ctx, []store.Status{0}, nil, 1, "w", time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	del := func(rowID int64) error {
		return db.DeleteOwned(ctx, id, "w", []store.DeletePart{{Table: "residue_race", IDs: []int64{rowID},
			AuditLine: func(n int64) string { return fmt.Sprintf("%d record(s) deleted", n) }}}, time.Hour, nil, false)
	}
	// An earlier run deleted row 1 and died before its purge: its mark.
	if err := del(1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	purge := store.ResiduePurge{Rewrite: true, Wait: 20 * time.Second}

	// This run's purge (with nothing of its own) takes the marked table;
	// another worker's delete of row 2 commits while it runs.
	type result struct {
		purged, pending []string
		err             error
	}
	done := make(chan result, 1)
	go func() {
		p, q, err := db.PurgeResidue(ctx, nil, clock.Now(), purge)
		done <- result{p, q, err}
	}()
	deleted := make(chan error, 1)
	go func() {
		watch := storetest.SQLOf(t, db)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			n, err := watch.Int(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'VACUUM (FULL, ANALYZE) "residue_race"%'`)
			if err != nil {
				deleted <- err
				return
			}
			if n > 0 {
				deleted <- del(2) // waits for the rewrite's lock, then commits
				return
			}
		}
		deleted <- fmt.Errorf("the purge's rewrite of residue_race was not seen")
	}()
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("the purge: purged %v, pending %v, %v", r.purged, r.pending, r.err)
	}
	marks, err := conn.Int(ctx, "SELECT count(*) FROM privacy_residue WHERE table_name = 'residue_race'")
	if err != nil {
		t.Fatal(err)
	}
	// The delete's run dies here, before its own purge. A later run:
	clock.Advance(time.Minute)
	if _, _, err := db.PurgeResidue(ctx, nil, clock.Now(), purge); err != nil {
		t.Fatal(err)
	}
	if n := conn.PostgresFileCount(t, ctx, "residue_race", oldToken); n != 0 {
		t.Fatalf("the purge left the marked row in the files %d time(s)", n)
	}
	if n := conn.PostgresFileCount(t, ctx, "residue_race", newToken); n != 0 {
		t.Fatalf("the row deleted during the purge is still in the table's files %d time(s), and its mark is gone (%d left): no run will purge it", n, marks)
	}
}
