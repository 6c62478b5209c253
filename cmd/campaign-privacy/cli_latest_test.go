package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
)

// TestMountedRegularKeyFileNotOwnedStillStarts: J89 made loadKeyFile
// chmod every existing regular key file readable by group or others to
// 0600 and refuse to start when the chmod fails. Only a symlinked key (a
// whole Kubernetes secret volume) is exempt. But the shipped image runs as
// 65534 with CP_DATA_DIR=/data a writable volume (SQLite lives there), so
// a key is put into it as a *regular file the process does not own*: a
// Kubernetes secret mounted with subPath (root-owned, defaultMode 0644,
// read-only), `docker run -v /etc/cp/export.key:/data/export.key:ro`, or
// the classic Linux layout of a root-owned 0640 key readable through the
// service's group (as PostgreSQL's own ssl_key_file allows). chmod on a
// file one does not own fails (EPERM), so every command that worked before
// the upgrade now stops with "is readable by others and could not be made
// 0600" — serve never starts again after the upgrade; for 0640 the message
// is also false (no "others" can read it).
// The test runs the binary as uid/gid 65534 (the image's user) on keys
// owned by root: it needs root to set that up, and is skipped otherwise.
func TestMountedRegularKeyFileNotOwnedStillStarts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand files to another user")
	}
	// The binary where uid 65534 may run it.
	binDir, err := os.MkdirTemp("", "cp-review-bin-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "campaign-privacy")
	src, err := os.Open(buildBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()

	for _, tc := range []struct {
		name string
		mode os.FileMode
		gid  int
	}{
		{"kubernetes subPath secret, root 0644", 0o644, 0},
		{"root-owned 0640 key readable through the service's group", 0o640, 65534},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, err := os.MkdirTemp("", "cp-review-keys-*")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			if err := os.Chmod(base, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(base, "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			for i, f := range []string{"session.key", "export.key", "subject.key", "receipt.key"} {
				p := filepath.Join(dir, f)
				if err := os.WriteFile(p, []byte(strings.Repeat(string("4567"[i]), 64)+"\n"), tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(p, 0, tc.gid); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(bin, "migrate")
			cmd.Env = cleanEnv(map[string]string{"CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"})
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("migrate as the image's user (65534) with keys mounted into the data directory as regular root-owned %v files: %v\n%s",
					tc.mode, err, strings.TrimSpace(string(out)))
			}
		})
	}
}

// TestEmptyDatabaseURLFlagRefused: J91 refuses an empty --addr,
// --data-dir, --instance-name and --ims-operator-claim because "an empty
// variable is unset, an empty flag has no meaning" (`serve --addr
// "$ADDR"` with ADDR unset). The same script mistake on --database-url
// (`serve --database-url "$DATABASE_URL"`, the variable's secret not
// mounted, a typo in its name) is still accepted: the empty URL means the
// embedded SQLite database, so serve starts on a new, empty database in
// ./data, with a new admin and new keys, answers ACC's privacy requests
// there and never runs the deletes waiting in PostgreSQL; `operator create
// --database-url "$URL"` says "created" for an operator nobody will find.
// Likewise `--subject-key "$SUBJECT_KEY"` unset silently falls back to (or
// creates) CP_DATA_DIR/subject.key: a replica hashing subjects with another
// key, "earlier requests unfindable by value" (README).
func TestEmptyDatabaseURLFlagRefused(t *testing.T) {
	m := &Main{Stderr: io.Discard, Getenv: func(string) string { return "" }}
	for _, flag := range []string{"--database-url=", "--subject-key=", "--export-key=", "--receipt-key=", "--session-key="} {
		if _, s, err := m.parse("serve", []string{flag}, nil); err == nil {
			t.Errorf("serve %s accepted (database URL %q, subject key %q): an unset script variable silently selects the embedded database or a generated key file",
				flag, s.databaseURL, s.subjectKey)
		}
	}
}

// TestJSONLogFormatCoversProgressLines: J92 made main write the final
// error as JSON when CP_LOG_FORMAT=json, "one JSON object a line, this one
// too: a collector parsing each line would drop the line". The other
// lines the commands write on standard error beside the JSON logs are
// still plain text: the progress lines of `demo-data` and `workflow run`
// when standard error is not a terminal — exactly the case of a
// Kubernetes CronJob or a CI job whose log collector parses JSON ("demo-
// data: 2/2 recipients (100%), 1234/s, about 0s left", every 5 s and at
// the end). A collector in JSON mode drops or mangles them, or flags each
// as a parse error.
func TestJSONLogFormatCoversProgressLines(t *testing.T) {
	env := map[string]string{"CP_DATA_DIR": filepath.Join(t.TempDir(), "data"), "CP_LOG_FORMAT": "json"}
	var out, errOut strings.Builder
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	if err := m.Run(context.Background(), []string{"demo-data", "--recipients", "2"}); err != nil {
		t.Fatalf("demo-data: %v\n%s", err, errOut.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("CP_LOG_FORMAT=json, a plain-text line on standard error: %q", l)
		}
	}
}

// TestStopWithACallCutOffIsNotAStart: J92 made serve turn every error into
// exit 0 with "shutting down: stopped while starting" once the context is
// cancelled (`err != nil && ctx.Err() != nil`), meant for a SIGTERM during
// the start. But it also catches errors after the start: when a call in
// flight is still running at the end of the 30 s shutdown budget (a slow
// client reading a large ExecuteQuery answer or a data-subject file),
// http.Server.Shutdown returns "context deadline exceeded". Before J92
// serve returned it (exit 1, the reason on standard error); now the
// process exits 0, says it was "stopped while starting" although it had
// served for a while, and never says that calls were cut off. An
// orchestrator, an operator, or a test of the README's promise ("exits 0
// once the calls in flight are done") sees a clean stop.
func TestStopWithACallCutOffIsNotAStart(t *testing.T) {
	env := testEnv(t, "sqlite")
	if out, err := run(t, env, "pw of ana 1\n", "operator", "create", "--login", "ana", "--password-stdin", "--right", "privacyRight"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	if out, err := run(t, env, "", "demo-data", "--recipients", "10000"); err != nil {
		t.Fatalf("demo-data: %v %s", err, out)
	}
	env["CP_WORKFLOW_SCHEDULE"] = "1h"
	env["CP_LOG_LEVEL"] = "info"
	env["CP_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &servertest.SyncBuffer{}
	ready := make(chan string, 1)
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: func(k string) string { return env[k] }, Ready: func(a string) { ready <- a }}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"serve"}) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\n%s", out)
	}
	body := post(t, "http://"+addr, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "pw of ana 1")))
	token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
	if token == "" {
		t.Fatalf("logon: %s", body)
	}
	// An answer of ~15 MB to a client that reads slowly (here: not at all).
	var q strings.Builder
	q.WriteString(`<queryDef schema="nms:recipient" operation="select" lineCount="10000"><select>`)
	for i := 0; i < 60; i++ {
		q.WriteString(`<node expr="@email" alias="@e` + strconv.Itoa(i) + `"/>`)
	}
	q.WriteString(`</select></queryDef>`)
	call := servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken xsi:type="xsd:string">`+token+
		`</sessiontoken><entity xsi:type="ns:Element">`+q.String()+`</entity></m:ExecuteQuery>`)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml\r\nSOAPAction: xtk:queryDef#ExecuteQuery\r\nContent-Length: %d\r\n\r\n%s", addr, len(call), call)
	time.Sleep(3 * time.Second) // the answer is being written, the client does not read
	cancel()                    // SIGTERM, long after the start
	var serveErr error
	select {
	case serveErr = <-done:
	case <-time.After(70 * time.Second):
		t.Fatalf("serve did not stop\n%s", out)
	}
	log := out.String()
	if strings.Contains(log, "stopped while starting") {
		t.Errorf("serve had been listening and answering, yet its stop is logged as \"stopped while starting\"")
	}
	if serveErr == nil {
		t.Errorf("the shutdown cut off a call in flight after the 30 s budget, yet serve returned nil (exit 0), as for a clean stop\n%.1500s", log)
	}
}

// TestReadOnlyCommandsCreateNoKeysOnPostgres: J90's existingDatabase
// returns at once when CP_DATABASE_URL is set, and the command then opens
// the service, whose loadKeys creates every missing key file. On
// PostgreSQL the data directory holds only the keys, usually given as
// settings to the service (CP_SESSION_KEY, CP_EXPORT_KEY, CP_SUBJECT_KEY,
// CP_RECEIPT_KEY from a secret store) and absent from an admin's shell: so
// `operator list`, `operator disable --login ana` (an urgent revocation)
// or `namespace list` with CP_DATABASE_URL set create ./data (or the
// mistyped CP_DATA_DIR) with four fresh random keys, 0600 — J46/J90's
// class, on the store J89 calls "every PostgreSQL deployment". A later
// `workflow run` from the same directory then encrypts exports and hashes
// subjects with keys the service does not have.
func TestReadOnlyCommandsCreateNoKeysOnPostgres(t *testing.T) {
	env := testEnv(t, "postgres")
	if out, err := run(t, env, "", "migrate"); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	for _, args := range [][]string{
		{"operator", "list"},
		{"namespace", "list"},
		{"operator", "disable", "--login", "ana"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		e := map[string]string{"CP_DATABASE_URL": env["CP_DATABASE_URL"], "CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"}
		out, err := run(t, e, "", args...)
		if ents, rerr := os.ReadDir(dir); rerr == nil {
			var names []string
			for _, en := range ents {
				names = append(names, en.Name())
			}
			t.Errorf("%q on PostgreSQL (err=%v, %q) created %s holding %s", args, err, strings.TrimSpace(out), dir, strings.Join(names, ", "))
		}
	}
}
