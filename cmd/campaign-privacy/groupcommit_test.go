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
	env := testEnv(t, dialect)
	if out, err := run(t, env, "", "demo-data", "--recipients", "1"); err != nil {
		t.Fatalf("demo-data: %v %s", err, out)
	}
	env["CP_ADMIN_PASSWORD"] = "admin pass 1"
	// The per-operator create quota is off: 32 clients of one operator
	// are this test's load, not an abuse.
	url, token, cmd, out := startBinary(t, env, "CP_FAILPOINT="+failpoint+":after=50", "CP_CREATE_RATE=0")

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

	ctx := context.Background()
	stored := func() (map[int64]store.Request, int64) {
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
	byID, total := stored()
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
	for value := range unanswered {
		body, err := soapCall(client, url, "nms:privacyRequest#CreateRequestByName", createCall(token, value))
		id, perr := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
		if err != nil || perr != nil {
			t.Fatalf("%s sent again: %v %s", value, err, body)
		}
		answered[id] = value
	}
	byID, total = stored()
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
	t.Logf("%d rows stored without an answer, %d calls sent again, %d rows in all", untold, len(unanswered), total)
}
