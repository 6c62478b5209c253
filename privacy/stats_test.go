package privacy_test

import (
	"context"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestStatisticsRefreshedBeforeWorkflows: right after a bulk load that
// left the data-model tables without planner statistics (autovacuum off,
// no ANALYZE), a workflow run analyzes the tables it reads before its
// lookups, once: the next run finds them fresh and analyzes nothing (the
// delete run's residue purge analyzes the tables it deleted from). The
// demo-data generator analyzes what it filled unless told not to. SQLite
// needs none of it; the workflows run there all the same.
func TestStatisticsRefreshedBeforeWorkflows(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		ctx := context.Background()
		g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 7, NoAnalyze: true}
		if _, _, err := g.Generate(ctx, 5, nil); err != nil {
			t.Fatal(err)
		}
		f := &fixture{env: env, ctx: ctx}
		analyzed := func(table string) int64 {
			t.Helper()
			if dialect != "postgres" {
				return 0
			}
			n, err := storetest.SQLOf(t, env.DB).Int(ctx,
				"SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ?", table)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		tables := []string{"nms_recipient", "nms_broad_log_rcp", "nms_proposition_visitor", "privacy_requests"}
		for _, table := range tables {
			if n := analyzed(table); n != 0 {
				t.Fatalf("%s analyzed %d times before any workflow", table, n)
			}
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		if rep := f.run(t, privacy.Collect); rep.Processed != 1 {
			t.Fatalf("collect: %+v", rep)
		}
		want := int64(0)
		if dialect == "postgres" {
			want = 1
		}
		for _, table := range tables {
			if n := analyzed(table); n != want {
				t.Fatalf("%s analyzed %d times after the first run, want %d", table, n, want)
			}
		}
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 || f.status(t, id) != privacy.StatusComplete {
			t.Fatalf("delete: %+v", rep)
		}
		// The delete run finds the statistics fresh; its residue purge
		// analyzes what it deleted from, once (VACUUM (FULL, ANALYZE)).
		for _, table := range tables[:3] {
			if n := analyzed(table); n != 2*want {
				t.Fatalf("%s analyzed %d times after the delete, want %d (the delete's own refresh found its statistics fresh, the purge analyzed it)", table, n, 2*want)
			}
		}
		if f.count(t, "nms_recipient") != 4 || f.count(t, "nms_broad_log_rcp") != 12 {
			t.Fatal("the delete is not exact")
		}

		// The generator's own ANALYZE.
		g.NoAnalyze = false
		if _, _, err := g.Generate(ctx, 1, nil); err != nil {
			t.Fatal(err)
		}
		if n := analyzed("nms_broad_log_rcp"); n != 3*want {
			t.Fatalf("demo-data did not analyze what it filled (%d)", n)
		}
	})
}
