package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

func workflowCall(method, token, inner string) string {
	return servertest.Envelope("", `<m:`+method+` xmlns:m="urn:xtk:workflow"><sessiontoken>`+token+`</sessiontoken>`+inner+`</m:`+method+`>`)
}

func workflowQuery(token string) string {
	return servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken>`+token+`</sessiontoken><entity><queryDef schema="xtk:workflow" operation="select">`+
		`<select><node expr="@internalName"/><node expr="@state"/><node expr="@lastStart"/><node expr="@lastEnd"/><node expr="@lastResult"/></select>`+
		`<orderBy><node expr="@id"/></orderBy></queryDef></entity></m:ExecuteQuery>`)
}

// TestWorkflowSOAP: xtk:workflow#Start, StartWithParameters, PostEvent and
// Stop drive the technical workflows by internal name or id, admin only;
// one run at a time across replicas; queryDef reads state, last start,
// last end and last result.
func TestWorkflowSOAP(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "boss", "correct horse", session.RightAdmin)
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		admin, _ := env.Logon(t, "boss", "correct horse")
		ana, _ := env.Logon(t, "ana", "correct horse")

		_, out := env.Post(t, "xtk:workflow#Start", workflowCall("Start", ana, `<workflowId>collectPrivacyRequests</workflowId>`))
		mustContain(t, out, "SOP-330011", "needs the admin right")

		// Another replica runs collectPrivacyRequests: a Start here is a
		// clear fault, and a Stop reaches that replica through the row.
		if ok, err := env.DB.StartWorkflowRun(ctx, 1, "other-replica", time.Hour); err != nil || !ok {
			t.Fatalf("the other replica's start: %v %v", ok, err)
		}
		_, out = env.Post(t, "xtk:workflow#Start", workflowCall("Start", admin, `<workflowId>collectPrivacyRequests</workflowId>`))
		mustContain(t, out, "SOP-330011", "is already running")
		_, out = env.Post(t, "xtk:workflow#Stop", workflowCall("Stop", admin, `<workflowId>1</workflowId>`))
		mustContain(t, out, "<StopResponse xmlns='urn:xtk:workflow'")
		if held, stop, err := env.DB.RenewWorkflowRun(ctx, 1, "other-replica", time.Hour); err != nil || !held || !stop {
			t.Fatalf("the other replica does not see the stop: held %v stop %v %v", held, stop, err)
		}
		if err := env.DB.FinishWorkflowRun(ctx, 1, "other-replica", "stopped: 0 processed, 0 failed"); err != nil {
			t.Fatal(err)
		}

		// A request to collect, then a real run.
		_, out = env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", admin, "defaultNamespace1", "wf@example.com", "1", "false", "1"))
		mustContain(t, out, "<CreateRequestByNameResponse")
		_, out = env.Post(t, "xtk:workflow#Start", workflowCall("Start", admin, `<workflowId>collectPrivacyRequests</workflowId>`))
		mustContain(t, out, "<StartResponse xmlns='urn:xtk:workflow'")
		env.Privacy.WaitWorkflows()
		_, out = env.Post(t, "xtk:queryDef#ExecuteQuery", workflowQuery(admin))
		mustContain(t, out, `internalName="collectPrivacyRequests"`, `state="20"`, `lastResult="1 processed, 0 failed"`)

		// By id; with parameters (acc-js-sdk's <variables/>); by the signal.
		_, out = env.Post(t, "xtk:workflow#Start", workflowCall("Start", admin, `<workflowId>2</workflowId>`))
		mustContain(t, out, "<StartResponse")
		env.Privacy.WaitWorkflows()
		_, out = env.Post(t, "xtk:workflow#StartWithParameters", workflowCall("StartWithParameters", admin, `<workflowId>cleanupPrivacyRequests</workflowId><parameters><variables hello="world"/></parameters>`))
		mustContain(t, out, "<StartWithParametersResponse")
		env.Privacy.WaitWorkflows()
		_, out = env.Post(t, "xtk:workflow#PostEvent", workflowCall("PostEvent", admin, `<workflowId>deletePrivacyRequestsData</workflowId><activity>signal</activity><transition/><parameters><variables/></parameters><complete>false</complete>`))
		mustContain(t, out, "<PostEventResponse")
		env.Privacy.WaitWorkflows()
		_, out = env.Post(t, "xtk:queryDef#ExecuteQuery", workflowQuery(admin))
		if strings.Count(out, `state="20"`) != 3 || strings.Count(out, `lastEnd="20`) != 3 {
			t.Fatalf("every workflow should have run once:\n%s", out)
		}

		for name, call := range map[string]string{
			"unknown workflow": workflowCall("Start", admin, `<workflowId>someOtherWorkflow</workflowId>`),
			"no workflow":      workflowCall("Stop", admin, `<workflowId></workflowId>`),
			"other activity":   workflowCall("PostEvent", admin, `<workflowId>1</workflowId><activity>end</activity><transition/><parameters/><complete>0</complete>`),
		} {
			action := "xtk:workflow#" + strings.TrimPrefix(strings.SplitN(strings.SplitN(call, "<m:", 2)[1], " ", 2)[0], "m:")
			if _, out := env.Post(t, action, call); !strings.Contains(out, "SOP-330011") {
				t.Errorf("%s: %s", name, out)
			}
		}
		if w, err := env.DB.FindWorkflowRun(ctx, "collectPrivacyRequests"); err != nil || w.State != store.WorkflowFinished || w.RunBy != nil {
			t.Fatalf("collect row %+v %v", w, err)
		}
	})
}

// TestScheduledRunsTakeTheWorkflowRow: the schedule and the console's
// button run each workflow only after taking its xtk:workflow row, so they
// never overlap a run started over SOAP (on this replica or another): the
// busy one is skipped, the others run and record their result.
func TestScheduledRunsTakeTheWorkflowRow(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "boss", "correct horse", session.RightAdmin)
		admin, _ := env.Logon(t, "boss", "correct horse")
		_, out := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", admin, "defaultNamespace1", "sched@example.com", "1", "false", "1"))
		mustContain(t, out, "<CreateRequestByNameResponse")

		// Another replica runs collectPrivacyRequests (id 1).
		if ok, err := env.DB.StartWorkflowRun(ctx, 1, "other-replica", time.Hour); err != nil || !ok {
			t.Fatalf("the other replica's start: %v %v", ok, err)
		}
		reports, err := env.Privacy.RunTaken(ctx, "all")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reports {
			if r.Workflow == "collectPrivacyRequests" {
				t.Fatalf("the scheduled run collected while another replica held the workflow: %+v", reports)
			}
		}
		if len(reports) != 2 {
			t.Fatalf("want the two free workflows run, got %+v", reports)
		}
		_, out = env.Post(t, "xtk:queryDef#ExecuteQuery", workflowQuery(admin))
		mustContain(t, out, `lastResult="0 processed, 0 failed"`)
		if strings.Contains(out, `internalName="collectPrivacyRequests" state="20"`) {
			t.Fatalf("collectPrivacyRequests should still be the other replica's:\n%s", out)
		}

		// Once the other replica is done, the next scheduled run collects.
		if err := env.DB.FinishWorkflowRun(ctx, 1, "other-replica", "0 processed, 0 failed"); err != nil {
			t.Fatal(err)
		}
		reports, err = env.Privacy.RunTaken(ctx, "collectPrivacyRequests")
		if err != nil || len(reports) != 1 || reports[0].Processed != 1 {
			t.Fatalf("collect after the other replica's end: %+v %v", reports, err)
		}
		_, out = env.Post(t, "xtk:queryDef#ExecuteQuery", workflowQuery(admin))
		mustContain(t, out, `internalName="collectPrivacyRequests"`, `lastResult="1 processed, 0 failed"`)
	})
}
