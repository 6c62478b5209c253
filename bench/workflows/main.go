// Command workflows measures the privacy workflows on a demo data set, side
// by side with hand-written SQL doing the same lookups and deletes (the
// floor), in one run:
//
//	go run ./bench/workflows -recipients 1000000 -requests 10000
//
// It needs PostgreSQL (CP_BENCH_POSTGRES_URL, default the local server) and
// works in a schema of its own, dropped at the end unless -keep is given.
package main

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime/pprof"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

func main() {
	recipients := flag.Int("recipients", 100_000, "demo recipients")
	requests := flag.Int("requests", 1000, "delete requests in the batch")
	accessN := flag.Int("access", 200, "access requests timed one by one")
	keep := flag.Bool("keep", false, "keep the schema")
	noAnalyze := flag.Bool("no-analyze", false, "no ANALYZE after demo-data: the workflows run on tables the planner has no statistics for")
	plainVacuum := flag.Bool("plain-vacuum", false, "end the delete run with a plain VACUUM instead of VACUUM FULL (CP_RESIDUE_PURGE=vacuum)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the delete batch (collect + delete) to this file")
	dbaCascade := flag.Bool("dba-cascade", false, "add a DBA's table outside the data model, one note per recipient, whose foreign key cascades a delete from nms_recipient (its rows are counted with each delete: J161)")
	flag.Parse()
	ctx := context.Background()
	base := os.Getenv("CP_BENCH_POSTGRES_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, err := sql.Open("pgx", base)
	check(err)
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	schema := "cp_bench_" + hex.EncodeToString(b)
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	check(err)
	if !*keep {
		defer admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	}
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	db, err := store.Open(ctx, store.Config{DatabaseURL: u.String(), Logger: quiet})
	check(err)
	defer db.Close()
	_, err = db.Migrate(ctx)
	check(err)
	reg, err := schemas.Default()
	check(err)
	check(db.SyncDataModel(ctx, reg))
	key := make([]byte, 32)
	_, _ = crand.Read(key)
	// Receipts on, as in production: every finished request is signed;
	// the audit chain and the post-delete purge (VACUUM FULL, or a plain
	// VACUUM with -plain-vacuum) are always on.
	_, receiptKey, err := ed25519.GenerateKey(crand.Reader)
	check(err)
	svc := privacy.New(db, reg, privacy.Config{Deduplicate: true, ExportKey: key, ReceiptKey: receiptKey, ReceiptIssuer: "bench", Logger: quiet,
		CreateRate: -1, PlainVacuum: *plainVacuum}) // the requests are the workload, not the per-operator quota
	check(svc.Setup(ctx))

	start := time.Now()
	// demo-data ends with an ANALYZE of the tables it filled; -no-analyze
	// leaves them without statistics, as a bulk load on a server with
	// autovacuum off does: the workflows must then refresh them themselves.
	g := &demodata.Generator{DB: db, Registry: reg, Seed: 42, Batch: 5000, NoAnalyze: *noAnalyze}
	_, _, err = g.Generate(ctx, *recipients, nil)
	check(err)
	stats := "ANALYZE after demo-data"
	if *noAnalyze {
		stats = "no ANALYZE after demo-data"
	}
	fmt.Printf("machine: %d recipients generated in %s (%s)\n", *recipients, time.Since(start).Round(time.Second), stats)
	if *dbaCascade {
		for _, q := range []string{
			"CREATE TABLE " + schema + ".crm_note (id BIGSERIAL PRIMARY KEY, recipient_id BIGINT REFERENCES " + schema + ".nms_recipient (id) ON DELETE CASCADE, body TEXT)",
			"INSERT INTO " + schema + ".crm_note (recipient_id, body) SELECT id, 'a note' FROM " + schema + ".nms_recipient",
			"CREATE INDEX ON " + schema + ".crm_note (recipient_id)",
			"ANALYZE " + schema + ".crm_note",
		} {
			_, err = admin.ExecContext(ctx, q)
			check(err)
		}
		fmt.Printf("a DBA's crm_note: one note per recipient, ON DELETE CASCADE from nms_recipient\n")
	}

	// The one-time rewrite of stored values into their canonical form, as
	// the first start after an upgrade runs it (every e-mail is read; the
	// demo's are canonical already, so the cost is the scan).
	_, err = admin.ExecContext(ctx, "UPDATE "+schema+".privacy_namespaces SET canonical = 0")
	check(err)
	start = time.Now()
	check(svc.Setup(ctx))
	fmt.Printf("canonical rewrite at start: %d recipients in %s\n", *recipients, time.Since(start).Round(time.Millisecond))

	caller := &session.Caller{OperatorID: 1, Login: "bench", Rights: []string{session.RightAdmin}}
	rng := rand.New(rand.NewPCG(7, 7))
	pick := rng.Perm(*recipients)
	create := func(n int, typ int64) {
		for _, p := range pick[:n] {
			_, err := svc.CreateRequestByName(ctx, caller, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
				ReconciliationValue: demodata.Email(int64(p + 1)), Type: typ, DownloadURL: "http://x/nms/gdpr.jssp?id="})
			check(err)
		}
		pick = pick[n:]
	}

	// Access: collect + export, timed per request.
	create(*accessN, privacy.TypeAccess)
	start = time.Now()
	_, err = svc.Run(ctx, privacy.Collect)
	check(err)
	access := time.Since(start) / time.Duration(*accessN)

	// The floor for the same lookups: hand-written SQL, one subject at a time.
	conn, err := sql.Open("pgx", u.String())
	check(err)
	floorSubjects := pick[:*accessN]
	start = time.Now()
	for _, p := range floorSubjects {
		floorLookup(ctx, conn, demodata.Email(int64(p+1)))
	}
	floor := time.Since(start) / time.Duration(*accessN)

	// Delete: a batch of one-step delete requests, collect then delete.
	create(*requests, privacy.TypeDelete)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer f.Close()
	}
	start = time.Now()
	_, err = svc.Run(ctx, privacy.Collect)
	check(err)
	collect := time.Since(start)
	start = time.Now()
	reps, err := svc.Run(ctx, privacy.Delete)
	check(err)
	del := time.Since(start)
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	perMinute := float64(reps[0].Processed) / (collect + del).Minutes()

	// The floor for deletes: hand-written lookup + delete per subject.
	floorDel := pick[*accessN : *accessN+min(*requests, 1000)]
	start = time.Now()
	for _, p := range floorDel {
		floorDelete(ctx, conn, demodata.Email(int64(p+1)))
	}
	floorDelPer := time.Since(start) / time.Duration(len(floorDel))

	fmt.Printf("access request (collect + encrypted file): %v per request; hand-written lookup floor %v (%.1fx)\n",
		access.Round(time.Microsecond), floor.Round(time.Microsecond), float64(access)/float64(floor))
	fmt.Printf("delete batch of %d: collect %s + delete %s = %.0f requests/min (%d processed, %d failed); per request %v; hand-written delete floor %v (%.1fx)\n",
		*requests, collect.Round(time.Millisecond), del.Round(time.Millisecond), perMinute, reps[0].Processed, reps[0].Failed,
		((collect + del) / time.Duration(*requests)).Round(time.Microsecond), floorDelPer.Round(time.Microsecond),
		float64((collect+del)/time.Duration(*requests))/float64(floorDelPer))

	// Issue 16's bar, judged here for this run (bench/run.sh gathers the
	// "target:" lines and compares the runs at 100,000 and 1,000,000).
	statistics := "ANALYZE after demo-data"
	if *noAnalyze {
		statistics = "no planner statistics"
	}
	mark := "✓"
	if perMinute < 10_000 {
		mark = "✗"
	}
	fmt.Printf("target: %s delete requests end to end (collect + delete, receipts and audit) at %d recipients, %s: %.0f/min (goal ≥ 10,000/min)\n",
		mark, *recipients, statistics, perMinute)
	fmt.Printf("result: recipients=%d analyzed=%t deletes_per_min=%.0f\n", *recipients, !*noAnalyze, perMinute)
}

var childQueries = []string{
	"SELECT * FROM nms_broad_log_rcp WHERE recipient_id = $1",
	"SELECT * FROM nms_tracking_log_rcp WHERE recipient_id = $1",
	"SELECT * FROM nms_broad_log_event_histo WHERE recipient_id = $1",
	"SELECT * FROM nms_rcp_grp_rel WHERE recipient_id = $1",
	"SELECT * FROM nms_visitor WHERE recipient_id = $1",
	"SELECT * FROM nms_proposition_visitor WHERE visitor_id IN (SELECT id FROM nms_visitor WHERE recipient_id = $1)",
	"SELECT * FROM nms_sub_histo WHERE recipient_id = $1",
	"SELECT * FROM nms_subscription WHERE recipient_id = $1",
	"SELECT * FROM nms_proposition_rcp WHERE recipient_id = $1",
}

// floorLookup reads every row of one subject with hand-written SQL.
func floorLookup(ctx context.Context, db *sql.DB, email string) {
	var id int64
	check(db.QueryRowContext(ctx, "SELECT id FROM nms_recipient WHERE email = $1", email).Scan(&id))
	for _, q := range childQueries {
		rows, err := db.QueryContext(ctx, q, id)
		check(err)
		for rows.Next() {
		}
		rows.Close()
	}
}

// floorDelete deletes one subject with hand-written SQL in one transaction.
func floorDelete(ctx context.Context, db *sql.DB, email string) {
	tx, err := db.BeginTx(ctx, nil)
	check(err)
	var id int64
	check(tx.QueryRowContext(ctx, "SELECT id FROM nms_recipient WHERE email = $1", email).Scan(&id))
	for _, q := range []string{
		"DELETE FROM nms_tracking_log_rcp WHERE recipient_id = $1",
		"DELETE FROM nms_broad_log_rcp WHERE recipient_id = $1",
		"DELETE FROM nms_broad_log_event_histo WHERE recipient_id = $1",
		"DELETE FROM nms_rcp_grp_rel WHERE recipient_id = $1",
		"DELETE FROM nms_proposition_visitor WHERE visitor_id IN (SELECT id FROM nms_visitor WHERE recipient_id = $1)",
		"DELETE FROM nms_visitor WHERE recipient_id = $1",
		"DELETE FROM nms_sub_histo WHERE recipient_id = $1",
		"DELETE FROM nms_subscription WHERE recipient_id = $1",
		"DELETE FROM nms_proposition_rcp WHERE recipient_id = $1",
		"DELETE FROM nms_recipient WHERE id = $1",
	} {
		_, err := tx.ExecContext(ctx, q, id)
		check(err)
	}
	check(tx.Commit())
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
