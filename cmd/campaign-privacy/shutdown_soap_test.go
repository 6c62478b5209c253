package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestShutdownDuringSOAPStartedDeleteRun is TestShutdownDuringDeleteRun
// (security-bar #12) with the delete run started the other documented way:
// xtk:workflow#Start over SOAP instead of the schedule. The service is
// stopped while the run waits before its residue purge. Serve waits only
// for the scheduled run: the SOAP-started run (a goroutine on
// context.WithoutCancel, counted in Service.runs, which nothing waits for
// outside tests) is neither stopped nor waited for, and the store is closed
// under it. Its deleted request stays claimed by the stopped process and
// the workflow row stays "started": the next run does nothing until the
// lease (15 min) has run out, as after a kill -9, though the stop was clean.
func TestShutdownDuringSOAPStartedDeleteRun(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			id, before := faultSetup(t, env)
			env["CP_WORKFLOW_SCHEDULE"] = "1h" // no scheduled run during the test
			env["CP_FAILPOINT"] = "residue-purge:sleep=10s"
			url, out, stop := serve(t, env)
			request := func() *store.Request {
				db := openDB(t, env)
				defer db.Close()
				r, err := db.FindRequestByID(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			body := post(t, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "admin pass 1")))
			token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
			call := servertest.Envelope("", `<m:Start xmlns:m="urn:xtk:workflow"><sessiontoken>`+token+
				`</sessiontoken><workflowId>`+privacy.Delete+`</workflowId></m:Start>`)
			if got := post(t, url, "xtk:workflow#Start", call); !strings.Contains(got, "<StartResponse") {
				t.Fatalf("Start: %s", got)
			}
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(request().Audit, "Records deleted;"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the started run did not delete:\n%s", out)
				}
			}
			start := time.Now()
			stop()
			t.Logf("the shutdown took %s", time.Since(start))
			r := request()
			claimed := "no one"
			if r.ClaimedBy != nil {
				claimed = *r.ClaimedBy
			}
			t.Logf("after the stop: %s, claimed by %s", privacy.Status(r.Status), claimed)
			checkInvariantsRows(t, env, before)
			got, err := run(t, env, "", "workflow", "run", privacy.Delete)
			t.Logf("the next run: %v %s", err, strings.TrimSpace(got))
			if r.ClaimedBy != nil || err != nil || !strings.Contains(got, "1 processed") {
				t.Fatalf("after a clean stop the request is claimed by %s and the next run does not complete it (%q): "+
					"the SOAP-started run was neither stopped nor waited for", claimed, strings.TrimSpace(got))
			}
			checkInvariants(t, env, id, before, true)
		})
	}
}
