package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestShutdownDuringCollectRunReleasesClaims (security-bar #12, the
// collect's side): the real serve is stopped (its context cancelled, as
// SIGTERM does) while its scheduled collect run writes the first of three
// access files (the failpoint pauses there 3 s). The run had claimed all
// three requests. serve says that a stopped run releases its requests for
// the next run, and warns "its requests wait for their lease" only when a
// run did not stop within the budget; this one stops in time, silently,
// yet every request it claimed stays claimed_by the stopped process: after
// the restart, `workflow run collect` processes none of them until the
// 15-minute lease has run out. Checked with plain SQL and the real command.
func TestShutdownDuringCollectRunReleasesClaims(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			values := demoRequests(t, env, privacy.TypeAccess, 1, 2, 3)
			env["CP_WORKFLOW_SCHEDULE"] = "1s"
			env["CP_FAILPOINT"] = "export-chunk:sleep=3s"
			_, out, stop := serve(t, env)
			conn := plainSQL(t, env)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				n, err := conn.Int(context.Background(), "SELECT count(*) FROM privacy_exports")
				if err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					break // the run writes its first file
				}
				if time.Now().After(deadline) {
					t.Fatalf("the scheduled collect did not start:\n%s", out)
				}
			}
			stop()
			if strings.Contains(out.String(), "did not stop within the shutdown's budget") {
				t.Fatalf("the run did not stop in time:\n%s", out)
			}
			held, err := conn.Int(context.Background(), "SELECT count(*) FROM privacy_requests WHERE claimed_by IS NOT NULL")
			if err != nil {
				t.Fatal(err)
			}
			got, err := run(t, env, "", "workflow", "run", privacy.Collect)
			if held != 0 || err != nil || !strings.Contains(got, "3 processed") {
				t.Fatalf("after a clean stop %d of %d requests stay claimed by the stopped process, and the next run says %q (%v): they wait for the 15-minute lease",
					held, len(values), strings.TrimSpace(got), err)
			}
		})
	}
}

// TestKill9TwoStepDeleteSparesReusedID (SECURITY-CATALOGUE J48 through a
// kill -9): a confirmed two-step delete commits its deletes
// (store.DeleteOwned) and marks its reviewed rows deleted only in a later
// commit (privacy/workflows.go: deletedUpdate); DeleteOwned records nothing
// for a two-step delete. The real binary is SIGKILLed at
// "delete-after-batch", between the two. The request stays
// deleteInProgress, its recipient gone, its reviewed set unmarked. A client
// then writes another person's recipient under the freed id. The run after
// the lease deletes that person "as reviewed" (checked with plain SQL):
// data of someone nobody reviewed or confirmed is erased, and the request
// completes with a receipt.
func TestKill9TwoStepDeleteSparesReusedID(t *testing.T) {
	bin := buildBinary(t)
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			env["CP_WORKFLOW_LEASE"] = "2s"
			if out, err := run(t, env, "", "demo-data", "--recipients", "5"); err != nil {
				t.Fatalf("demo-data: %v %s", err, out)
			}
			env["CP_ADMIN_PASSWORD"] = "admin pass 1"
			conn := plainSQL(t, env)
			rcp, err := conn.Int(context.Background(), "SELECT id FROM nms_recipient WHERE email = ?", demodata.Email(3))
			if err != nil {
				t.Fatal(err)
			}
			soap := func(action, call string) string {
				url, _, stop := serve(t, env)
				defer stop()
				body := post(t, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "admin pass 1")))
				token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
				return post(t, url, action, servertest.Envelope("", strings.ReplaceAll(call, "TOKEN", token)))
			}
			got := soap("nms:privacyRequest#CreateRequestByName", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>TOKEN</sessiontoken>`+
				`<namespaceName>defaultNamespace1</namespaceName><reconciliationValue>`+demodata.Email(3)+`</reconciliationValue>`+
				`<type>2</type><confirmDeletePending>true</confirmDeletePending><regulation>1</regulation></m:CreateRequestByName>`)
			id := servertest.Between(got, "<id xsi:type='xsd:int'>", "<")
			if _, err := strconv.ParseInt(id, 10, 64); err != nil {
				t.Fatalf("create: %s", got)
			}
			if out, err := run(t, env, "", "workflow", "run", privacy.Collect); err != nil || !strings.Contains(out, "1 processed") {
				t.Fatalf("collect: %v %s", err, out)
			}
			if got := soap("nms:privacyRequest#ConfirmDeletePending", `<m:ConfirmDeletePending xmlns:m="urn:nms:privacyRequest"><sessiontoken>TOKEN</sessiontoken>`+
				`<privacyRequestId>`+id+`</privacyRequestId></m:ConfirmDeletePending>`); strings.Contains(got, "Fault") {
				t.Fatalf("confirm: %s", got)
			}
			runKilled(t, bin, env, privacy.Delete, "delete-after-batch")
			if n, _ := conn.Int(context.Background(), "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
				t.Fatal("the killed run did not delete the recipient")
			}
			// Another person, written under the freed id.
			if err := conn.InsertRow(context.Background(), "nms_recipient", map[string]any{"id": rcp, "email": "someone.else@example.com"}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2100 * time.Millisecond) // the dead run's leases
			out, err := run(t, env, "", "workflow", "run", privacy.Delete)
			n, cerr := conn.Int(context.Background(), "SELECT count(*) FROM nms_recipient WHERE id = ? AND email = 'someone.else@example.com'", rcp)
			if cerr != nil {
				t.Fatal(cerr)
			}
			status, _ := conn.Int(context.Background(), "SELECT status FROM privacy_requests WHERE id = "+id)
			if n != 1 {
				t.Fatalf("another person's recipient (id %d), written after the kill, was deleted by the next run (%d left; request status %s; run: %v %s)",
					rcp, n, privacy.Status(status), err, strings.TrimSpace(out))
			}
		})
	}
}
