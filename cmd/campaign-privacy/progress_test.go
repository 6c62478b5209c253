package main

import (
	"bytes"
	"context"
	"database/sql"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestProgressLinesAndAnalyze: off a terminal, demo-data and workflow run
// write progress lines (count, total, rate, time left) to standard error;
// demo-data leaves PostgreSQL's statistics fresh (issue 13).
func TestProgressLinesAndAnalyze(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			var out, errOut bytes.Buffer
			m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }, ProgressEvery: time.Nanosecond}
			if err := m.Run(context.Background(), []string{"demo-data", "--recipients", "3000", "--seed", "5"}); err != nil {
				t.Fatalf("demo-data: %v\n%s", err, errOut.String())
			}
			if !regexp.MustCompile(`(?m)^demo-data: 3000/3000 recipients \(100%\), \d+/s, about 0s left$`).MatchString(errOut.String()) {
				t.Errorf("no final progress line:\n%s", errOut.String())
			}
			if !regexp.MustCompile(`(?m)^demo-data: \d+/3000 recipients \(\d+%\)`).MatchString(errOut.String()) {
				t.Errorf("no progress line:\n%s", errOut.String())
			}
			if dialect == store.Postgres {
				db, err := sql.Open("pgx", env["CP_DATABASE_URL"])
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				var analyzed bool
				for range 50 {
					if err := db.QueryRow(`SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'nms_recipient' AND schemaname = current_schema()`).Scan(&analyzed); err != nil {
						t.Fatal(err)
					}
					if analyzed {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if !analyzed {
					t.Error("demo-data did not ANALYZE")
				}
			}

			// Two requests for the collect: its progress says 2/2.
			a, err := m.open(context.Background(), mustParse(t, m), m.logger(mustParse(t, m)))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []string{"demo-1@example.com", "demo-2@example.com"} {
				if _, err := a.Privacy.CreateRequestByName(context.Background(), operatorCaller, privacy.CreateRequest{
					NamespaceName: "defaultNamespace1", ReconciliationValue: v, Type: privacy.TypeAccess, DownloadURL: "http://x/nms/gdpr.jssp?id="}); err != nil {
					t.Fatal(err)
				}
			}
			// While another replica holds collectPrivacyRequests (the
			// xtk:workflow row), the command skips it and collects nothing.
			if ok, err := a.DB.StartWorkflowRun(context.Background(), 1, "other-replica", time.Hour); err != nil || !ok {
				t.Fatalf("the other replica's start: %v %v", ok, err)
			}
			var stdout bytes.Buffer
			m.Stdout = &stdout
			if err := m.Run(context.Background(), []string{"workflow", "run", privacy.Collect}); err != nil {
				t.Fatalf("workflow run: %v\n%s", err, errOut.String())
			}
			if want := privacy.Collect + ": skipped, it is already running (here or on another replica)\n"; stdout.String() != want {
				t.Fatalf("workflow run beside another replica's run printed %q, want %q", stdout.String(), want)
			}
			if err := a.DB.FinishWorkflowRun(context.Background(), 1, "other-replica", "0 processed, 0 failed"); err != nil {
				t.Fatal(err)
			}
			a.Close()
			errOut.Reset()
			stdout.Reset()
			if err := m.Run(context.Background(), []string{"workflow", "run", privacy.Collect}); err != nil {
				t.Fatalf("workflow run: %v\n%s", err, errOut.String())
			}
			if stdout.String() != privacy.Collect+": 2 processed, 0 failed\n" {
				t.Errorf("workflow run printed %q", stdout.String())
			}
			if !regexp.MustCompile(`(?m)^` + privacy.Collect + `: 2/2 requests \(100%\)`).MatchString(errOut.String()) {
				t.Errorf("no workflow progress line:\n%s", errOut.String())
			}
		})
	}
}

func mustParse(t *testing.T, m *Main) *settings {
	t.Helper()
	_, s, err := m.parse("test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var operatorCaller = &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}
