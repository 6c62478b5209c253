package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// engineScript is the acc-js-sdk script of TestPrivacyEngine, run in phases
// (seed, check-collected, confirm, check-done); it shares the runtime check
// of the acc-js-sdk foundation script.
var engineScript = clientScript{
	name:     "acc-js-sdk",
	command:  []string{"node", "js/acc-js-sdk-engine.js"},
	requires: nodeModule("@adobe/acc-js-sdk"),
}

// Marker lines printed by js/acc-js-sdk-engine.js.
const (
	engineStateMarker  = "ENGINE_STATE "
	engineCountsMarker = "ENGINE_COUNTS "
)

// engineState is the seed phase's state line: the subjects' and shared
// rows' ids and the four requests.
type engineState struct {
	Subjects map[string]struct {
		ID           int    `json:"id"`
		Email        string `json:"email"`
		Transactions []int  `json:"transactions"`
	} `json:"subjects"`
	Shared   map[string]int `json:"shared"`
	Requests map[string]int `json:"requests"`
}

// engineCounts is the check-done phase's counts line: per subject ("a",
// "b", "c") and table its rows, the shared rows ("shared") and the table
// totals ("total").
type engineCounts map[string]map[string]int

// TestPrivacyEngine runs the privacy engine end to end on both stores: the
// real server (with the example custom schemas), Adobe's acc-js-sdk seeding
// recipients and their rows in the standard and custom tables and creating
// an access, a 2-step delete, a 1-step delete (by mobile phone) and an
// unknown-subject request, the real `campaign-privacy workflow run all`
// against the same database, the statuses and per-table records read back
// with queryDef, the confirmation of the 2-step delete, a second run, and
// finally the rows left in every table and the access file downloaded with
// the SOAP session as a cookie.
func TestPrivacyEngine(t *testing.T) {
	schemasDir, err := filepath.Abs(filepath.Join("..", "examples", "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			st.require(t)
			requireRuntime(t, engineScript)
			// The workflows run only when the test runs them with the CLI.
			env := append(st.env(t), "CP_SCHEMAS_DIR="+schemasDir, "CP_WORKFLOW_SCHEDULE=24h")
			in := newInstance(t, env...)
			op := in.createOperator(t, "erin", "privacyRight")
			in.start(t)

			out := engineNode(t, in, op, "seed", "")
			stateLine := markerValue(t, out, engineStateMarker)
			var state engineState
			if err := json.Unmarshal([]byte(stateLine), &state); err != nil {
				t.Fatalf("seed state line %q: %v\n%s", stateLine, err, out)
			}
			checkEngineState(t, state)

			engineWorkflow(t, in, map[string]int{
				"collectPrivacyRequests":    4, // access a@, 2-step b@, 1-step c@, nobody@
				"deletePrivacyRequestsData": 1, // c@ (b@ waits for its confirmation)
			})
			engineNode(t, in, op, "check-collected", stateLine)
			engineNode(t, in, op, "confirm", stateLine)
			engineWorkflow(t, in, map[string]int{
				"collectPrivacyRequests":    0,
				"deletePrivacyRequestsData": 1, // b@, confirmed
			})
			out = engineNode(t, in, op, "check-done", stateLine)

			var counts engineCounts
			if err := json.Unmarshal([]byte(markerValue(t, out, engineCountsMarker)), &counts); err != nil {
				t.Fatalf("counts line: %v\n%s", err, out)
			}
			checkEngineCounts(t, counts)
		})
	}
}

// engineNode runs one phase of js/acc-js-sdk-engine.js as op and returns its
// output; a non-zero exit fails the test with the output.
func engineNode(t *testing.T, in *instance, op operator, phase, state string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*scriptTimeout)
	defer cancel()
	args := append(append([]string{}, engineScript.command[1:]...), phase, in.baseURL, op.login, op.password)
	cmd := exec.CommandContext(ctx, engineScript.command[0], args...)
	cmd.Env = append(os.Environ(), "CP_ENGINE_STATE="+state)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("acc-js-sdk-engine.js %s timed out after %s\n%s", phase, 2*scriptTimeout, out)
	}
	if err != nil {
		t.Fatalf("acc-js-sdk-engine.js %s as %s: %v\n%s", phase, op.login, err, out)
	}
	t.Logf("acc-js-sdk-engine.js %s:\n%s", phase, out)
	return string(out)
}

// engineWorkflow runs `campaign-privacy workflow run all` with the server's
// settings and checks each workflow's report line: the processed counts
// wanted and no failure.
func engineWorkflow(t *testing.T, in *instance, processed map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var stdout, stderr syncBuffer
	cmd := in.command(ctx, "workflow", "run", "all")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("workflow run all: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("workflow run all:\n%s", stdout.String())
	reports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if name, rest, ok := strings.Cut(line, ": "); ok {
			reports[name] = rest
		}
	}
	for _, name := range []string{"collectPrivacyRequests", "deletePrivacyRequestsData", "cleanupPrivacyRequests"} {
		rest, ok := reports[name]
		if !ok {
			t.Errorf("workflow run all: no report line for %s:\n%s", name, stdout.String())
			continue
		}
		var n, failed int
		if _, err := fmt.Sscanf(rest, "%d processed, %d failed", &n, &failed); err != nil {
			t.Errorf("workflow run all: %s: unreadable report %q", name, rest)
			continue
		}
		if failed != 0 {
			t.Errorf("workflow run all: %s: %d failed, want 0\nstderr:\n%s", name, failed, stderr.String())
		}
		if want, ok := processed[name]; ok && n != want {
			t.Errorf("workflow run all: %s processed %d request(s), want %d", name, n, want)
		}
	}
}

// markerValue returns what follows marker on its line of out.
func markerValue(t *testing.T, out, marker string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, marker); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in the script output:\n%s", strings.TrimSpace(marker), out)
	return ""
}

func checkEngineState(t *testing.T, s engineState) {
	t.Helper()
	seen := map[int]string{}
	for _, name := range []string{"access", "twoStep", "oneStep", "unknown"} {
		id := s.Requests[name]
		if id <= 0 {
			t.Fatalf("seed: request %s has no id: %v", name, s.Requests)
		}
		if other, dup := seen[id]; dup {
			t.Fatalf("seed: requests %s and %s share the id %d", name, other, id)
		}
		seen[id] = name
	}
	for _, k := range []string{"a", "b", "c"} {
		if sub, ok := s.Subjects[k]; !ok || sub.ID <= 0 || len(sub.Transactions) != 2 {
			t.Fatalf("seed: subject %s incomplete: %+v", k, s.Subjects[k])
		}
	}
	if s.Shared["service"] <= 0 || s.Shared["group"] <= 0 {
		t.Fatalf("seed: shared rows missing: %v", s.Shared)
	}
}

// checkEngineCounts checks, independently of the script, that exactly the
// deleted subjects' rows are gone: a@'s rows (access only) and the shared
// service and list remain, nothing of b@ and c@ in any table.
func checkEngineCounts(t *testing.T, c engineCounts) {
	t.Helper()
	perSubject := map[string]int{
		"recipient": 1, "broadLogRcp": 2, "subscription": 1, "rcpGrpRel": 1, "transaction": 2, "transactionDetail": 3,
	}
	want := engineCounts{
		"a":      perSubject,
		"b":      {},
		"c":      {},
		"shared": {"service": 1, "group": 1},
		"total": {
			"nms:recipient": 1, "nms:broadLogRcp": 2, "nms:subscription": 1, "nms:rcpGrpRel": 1,
			"cus:transaction": 2, "cus:transactionDetail": 3, "nms:service": 1, "nms:group": 1,
		},
	}
	for table := range perSubject {
		want["b"][table], want["c"][table] = 0, 0
	}
	for group, tables := range want {
		for table, n := range tables {
			got, ok := c[group][table]
			switch {
			case !ok:
				t.Errorf("counts: no %s/%s in %v", group, table, c)
			case got != n:
				t.Errorf("counts: %s/%s = %d, want %d", group, table, got, n)
			}
		}
	}
}
