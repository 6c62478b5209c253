package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startBinary runs the real binary's serve with env (plus extra) and waits
// until the admin can log on; it returns the base URL, the session token
// and the process.
func startBinary(t *testing.T, env map[string]string, extra ...string) (string, string, *exec.Cmd, *servertest.SyncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(buildBinary(t), "serve")
	cmd.Env = append(os.Environ(), "CP_ADDR="+addr)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extra...)
	out := &servertest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	url := "http://" + addr
	logon := servertest.Envelope("", servertest.LogonCall("admin", env["CP_ADMIN_PASSWORD"]))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		body, err := soapCall(http.DefaultClient, url, "xtk:session#Logon", logon)
		if token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<"); err == nil && token != "" {
			return url, token, cmd, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer a logon: %v %s\n%s", err, body, out)
		}
	}
}

// createsBinary starts the real binary on dialect for the tests that load
// it with creates: one demo recipient, the admin's password set, the
// per-operator create quota off (the test's clients of one operator are
// its load, not an abuse), and extra settings.
func createsBinary(t *testing.T, dialect string, extra ...string) (env map[string]string, url, token string, cmd *exec.Cmd, out *servertest.SyncBuffer) {
	t.Helper()
	env = testEnv(t, dialect)
	if out, err := run(t, env, "", "demo-data", "--recipients", "1"); err != nil {
		t.Fatalf("demo-data: %v %s", err, out)
	}
	env["CP_ADMIN_PASSWORD"] = "admin pass 1"
	url, token, cmd, out = startBinary(t, env, append([]string{"CP_CREATE_RATE=0"}, extra...)...)
	return env, url, token, cmd, out
}

// soapCall posts one SOAP call; an error means no HTTP answer.
func soapCall(client *http.Client, url, action, body string) (string, error) {
	req, err := http.NewRequest("POST", url+"/nl/jsp/soaprouter.jsp", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("SOAPAction", action)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func createCall(token, value string) string {
	return servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+
		`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>`+value+
		`</reconciliationValue><type>1</type><confirmDeletePending>false</confirmDeletePending><regulation>1</regulation></m:CreateRequestByName>`)
}

// TestKill9DuringGroupCommit: 32 clients create requests against the real
// binary until it kills itself (SIGKILL) inside the 51st batch's transaction, after
// the batch's rows and audit lines are written and before the commit. Then
// every id a client was answered exists, whole; no row is half there (each
// is named after its id, has its download URL and its audit line in the
// chain); the chain verifies and counts one line per stored request.
func TestKill9DuringGroupCommit(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { killDuringCreates(t, dialect, "create-batch-before-commit") })
	}
}

// TestKill9AfterGroupCommit (security-bar #92, a cut after COMMIT): the
// same, killed right after the 51st batch's commit, before any of its
// callers is answered. Its rows are stored and nobody was told their ids.
// The clients send those calls again to the restarted binary and get the
// stored requests back: no value is stored twice, and every answer is the
// row stored for that value.
func TestKill9AfterGroupCommit(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) { killDuringCreates(t, dialect, "create-batch-after-commit") })
	}
}

func killDuringCreates(t *testing.T, dialect, failpoint string) {
	env, url, token, cmd, out := createsBinary(t, dialect, "CP_FAILPOINT="+failpoint+":after=50")

	var (
		mu         sync.Mutex
		answered   = map[int64]string{}
		unanswered = map[string]bool{} // sent, no HTTP answer
		faults     int
		wg         sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				value := fmt.Sprintf("kill-%d-%d@example.com", g, i)
				if i%4 == 0 {
					value = fmt.Sprintf("shared-%d@example.com", i) // deduplicated across clients
				}
				body, err := soapCall(client, url, "nms:privacyRequest#CreateRequestByName", createCall(token, value))
				if err != nil {
					mu.Lock()
					unanswered[value] = true
					mu.Unlock()
					return // the process is gone
				}
				id, perr := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
				mu.Lock()
				if perr != nil {
					faults++
				} else if prior, ok := answered[id]; ok && prior != value {
					t.Errorf("id %d answered for %s and %s", id, prior, value)
				} else {
					answered[id] = value
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("the process never reached the failpoint (%d answered, %d faults)\n%s", len(answered), faults, out)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the process was not killed in a batch: %v\n%s", err, out)
	}
	if faults > 0 {
		t.Fatalf("%d calls were answered with a fault before the kill", faults)
	}
	if len(answered) == 0 {
		t.Fatal("no call was answered before the kill")
	}

	byID, total := storedRequests(t, env)
	for id, value := range answered {
		r, ok := byID[id]
		if !ok {
			t.Fatalf("request %d was answered but is not stored", id)
		}
		if r.ReconciliationValue != value {
			t.Fatalf("request %d holds another value", id)
		}
	}
	t.Logf("%d ids answered, %d rows stored after the kill", len(answered), total)
	if failpoint != "create-batch-after-commit" {
		return
	}

	// The rows of the batch committed before the kill: stored, told to
	// nobody.
	told := map[string]bool{}
	for _, v := range answered {
		told[v] = true
	}
	var untold int
	for _, r := range byID {
		if !told[r.ReconciliationValue] {
			untold++
		}
	}
	if untold == 0 {
		t.Fatal("no row was stored without an answer: the kill came before the commit")
	}
	// The clients send their unanswered calls again.
	url, token, _, _ = startBinary(t, env, "CP_CREATE_RATE=0")
	total = sendAgain(t, env, client, url, token, unanswered, answered)
	t.Logf("%d rows stored without an answer, %d calls sent again, %d rows in all", untold, len(unanswered), total)
}

// storedRequests reads every stored request by id, failing on a row half
// written (not named after its id, without its download URL or its
// creation's audit line), and checks that the audit chain verifies and
// counts one line per request.
func storedRequests(t *testing.T, env map[string]string) (map[int64]store.Request, int64) {
	t.Helper()
	ctx := context.Background()
	db := openDB(t, env)
	defer db.Close()
	rows, total, err := db.FindRequests(ctx, store.RequestFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]store.Request{}
	for _, r := range rows {
		id := strconv.FormatInt(r.ID, 10)
		if r.Name != "privacyRequest"+id || !strings.HasSuffix(r.URLFile, "id="+id) && !strings.HasSuffix(r.URLFile, id) ||
			!strings.Contains(r.Audit, "Request created by operator 'admin'.") {
			t.Fatalf("a half-written row: %+v", r)
		}
		byID[r.ID] = r
	}
	head, err := db.VerifyAuditChain(ctx, nil)
	if err != nil || head.Seq != total {
		t.Fatalf("audit chain %+v %v for %d requests", head, err, total)
	}
	return byID, total
}

// sendAgain sends the calls of values again (calls answered with a fault,
// or not at all) and adds their answers to answered; then no value may be
// stored twice, and every id answered must be the row stored for its
// value. It returns the number of rows stored.
func sendAgain(t *testing.T, env map[string]string, client *http.Client, url, token string, values map[string]bool, answered map[int64]string) int64 {
	t.Helper()
	for value := range values {
		body, err := soapCall(client, url, "nms:privacyRequest#CreateRequestByName", createCall(token, value))
		id, perr := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
		if err != nil || perr != nil {
			t.Fatalf("%s sent again: %v %s", value, err, body)
		}
		answered[id] = value
	}
	byID, total := storedRequests(t, env)
	perValue := map[string]int{}
	for _, r := range byID {
		perValue[r.ReconciliationValue]++
		if perValue[r.ReconciliationValue] > 1 {
			t.Fatalf("%s is stored twice", r.ReconciliationValue)
		}
	}
	for id, value := range answered {
		if r, ok := byID[id]; !ok || r.ReconciliationValue != value {
			t.Fatalf("request %d answered for %s is not the row stored for it", id, value)
		}
	}
	return total
}

// TestPostgresCrashDuringCreates (security-bar #90; issue 16's group
// commit): 16 clients create requests against the real binary while the
// test's PostgreSQL cluster crashes (pg_ctl -m immediate: no checkpoint,
// the server recovers from its WAL as it starts again). A call in flight
// gets its id or a fault; the service reconnects by itself and answers
// again — every call within its deadline, the first call sent after the
// cluster is back answered within 5 s. Then every id answered is stored,
// whole, with its value, the
// audit chain verifies, and each call that got a fault, sent again, gets
// one request: a batch whose commit reached the WAL but whose answer was
// lost is found again, never stored twice.
func TestPostgresCrashDuringCreates(t *testing.T) {
	reference := regexp.MustCompile(`\(reference [0-9a-f]+\)`)
	restart := testClusterRestart(t, "creates")
	env, url, token, cmd, out := createsBinary(t, store.Postgres)

	var (
		mu        sync.Mutex
		answered  = map[int64]string{}
		faulted   = map[string]bool{}
		faults    = map[string]int{} // each fault's text and detail: how many
		restarted bool
		after     int // calls answered with an id after the restart
		wg        sync.WaitGroup
		longest   time.Duration // the longest call
		back      time.Time     // when the restarted cluster accepted connections
		firstBack time.Time     // when the first call sent after that got its id
	)
	goroutines := func() int {
		t.Helper()
		_, body := httpGet(t, url+"/metrics")
		n, err := strconv.Atoi(servertest.Between(body, "\ngo_goroutines ", "\n"))
		if err != nil {
			t.Fatalf("no go_goroutines in /metrics: %v", err)
		}
		return n
	}
	baseline := goroutines()
	stop := make(chan struct{})
	client := &http.Client{Timeout: 30 * time.Second}
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				value := fmt.Sprintf("crash-%d-%d@example.com", g, i)
				sent := time.Now()
				body, err := soapCall(client, url, "nms:privacyRequest#CreateRequestByName", createCall(token, value))
				ended := time.Now()
				id, perr := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
				mu.Lock()
				longest = max(longest, ended.Sub(sent))
				if err == nil && perr == nil && !back.IsZero() && sent.After(back) && firstBack.IsZero() {
					firstBack = ended
				}
				switch {
				case err != nil:
					t.Errorf("no HTTP answer while the database restarted: %v", err)
					faulted[value] = true
				case perr != nil:
					detail := servertest.Between(body, "<detail xsi:type='xsd:string'>", "<")
					faults[servertest.Between(body, "<faultstring xsi:type='xsd:string'>", "<")+" / "+reference.ReplaceAllString(detail, "(reference …)")]++
					faulted[value] = true
				default:
					if prior, ok := answered[id]; ok {
						t.Errorf("id %d answered for %s and %s", id, prior, value)
					}
					answered[id] = value
					if restarted {
						after++
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	before := len(answered)
	mu.Unlock()
	restart("immediate")
	mu.Lock()
	restarted, back = true, time.Now()
	mu.Unlock()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := after
		mu.Unlock()
		if n >= 50 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("the service answered %d creates in the minute after the restart; faults %v\n%s", n, faults, out)
		}
	}
	close(stop)
	wg.Wait()
	if cmd.ProcessState != nil {
		t.Fatalf("the service exited: %v\n%s", cmd.ProcessState, out)
	}
	if before == 0 {
		t.Fatal("no call was answered before the crash")
	}
	// A call the outage failed gets the Server fault, never one that
	// blames the caller (a session refused, a value said to be wrong).
	for f := range faults {
		if !strings.HasPrefix(f, "SOP-330011 Error while executing the method 'CreateRequestByName' of service 'nms:privacyRequest'.") {
			t.Errorf("a create during the outage got %q", f)
		}
	}
	byID, _ := storedRequests(t, env)
	var inDoubt int // faulted, yet committed before the crash
	for _, r := range byID {
		if faulted[r.ReconciliationValue] {
			inDoubt++
		}
	}
	t.Logf("%d ids answered before the crash, %d after the restart; %d faults, %d of them stored: %v", before, after, len(faulted), inDoubt, faults)
	// The bar: a fault within the call's deadline (10 s), no hang; back
	// to normal within 5 s of the database's return, the pool
	// reconnecting by itself.
	t.Logf("the longest call %s; the first id %s after the cluster accepted connections again", longest, firstBack.Sub(back))
	if longest > 12*time.Second {
		t.Errorf("a call took %s during the outage (the call deadline is 10 s)", longest)
	}
	if firstBack.Sub(back) > 5*time.Second {
		t.Errorf("the first create sent after the database returned was answered %s later", firstBack.Sub(back))
	}
	// And the service's goroutines back at their baseline once the
	// clients have gone.
	client.CloseIdleConnections()
	n := goroutines()
	for deadline := time.Now().Add(10 * time.Second); n > baseline+5 && time.Now().Before(deadline); n = goroutines() {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the service's goroutines: %d before the load, %d after", baseline, n)
	if n > baseline+5 {
		t.Errorf("the service runs %d goroutines after the outage, %d before it", n, baseline)
	}
	total := sendAgain(t, env, client, url, token, faulted, answered)
	t.Logf("%d calls sent again, %d rows in all", len(faulted), total)
	if strings.Contains(out.String(), "@example.com") || strings.Contains(out.String(), token) {
		t.Errorf("the service's log holds a reconciliation value or the session token:\n%s", out)
	}
}
