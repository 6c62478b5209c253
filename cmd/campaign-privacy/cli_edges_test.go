package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestReviewReceiptVerifyChecksEveryFileItIsGiven: `receipt verify` takes
// the first word as the receipt and lets parse accept one more positional
// word (meant for `receipt verify --public-key K FILE`), which it then never
// reads. So `receipt verify good.jws tampered.jws` (a script's
// `receipt verify *.jws` over two files) prints "receipt verified" and
// exits 0 without having looked at the second receipt: a tampered or
// forged erasure receipt passes an auditor's check.
func TestReceiptVerifyChecksEveryFileItIsGiven(t *testing.T) {
	env := testEnv(t, "sqlite")
	if out, err := run(t, env, "", "demo-data", "--recipients", "2"); err != nil {
		t.Fatalf("demo-data: %v %s", err, out)
	}
	ctx := context.Background()
	m := &Main{Stderr: os.Stderr, Getenv: func(k string) string { return env[k] }}
	_, s, err := m.parse("test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.open(ctx, s, m.logger(s))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	caller := &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}
	id, err := a.Privacy.CreateRequestByName(ctx, caller, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
		ReconciliationValue: demodata.Email(1), Type: privacy.TypeAccess, DownloadURL: "http://x/nms/gdpr.jssp?id="})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, env, "", "workflow", "run", "all"); err != nil {
		t.Fatalf("workflow run: %v %s", err, out)
	}
	jws, err := a.Privacy.Receipt(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.jws"), filepath.Join(dir, "tampered.jws")
	if err := os.WriteFile(good, []byte(jws), 0o600); err != nil {
		t.Fatal(err)
	}
	b := []byte(jws)
	b[len(b)-10] ^= 0x01
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Sanity: each alone answers as it should.
	if _, err := run(t, env, "", "receipt", "verify", good); err != nil {
		t.Fatalf("the good receipt alone: %v", err)
	}
	if _, err := run(t, env, "", "receipt", "verify", bad); err == nil {
		t.Fatal("the tampered receipt alone verified")
	}
	out, err := run(t, env, "", "receipt", "verify", good, bad)
	if err == nil {
		t.Errorf("receipt verify good.jws tampered.jws: exit 0, the second receipt never checked:\n%.200s", out)
	}
}

// TestReviewDataDirWithURICharacters: store.Open builds the SQLite DSN as
// "file:" + path + "?_pragma=…" without escaping the path. A CP_DATA_DIR
// holding '?' or '#' (legal in a directory name) cuts the file name there:
// the database, with every person's data, is written beside the data
// directory instead of in it — a file named after the directory's prefix
// ("data" for "data?1"), mode 0644 in the parent directory (not 0600 in
// the 0700 data directory: readable by every local user) — while
// CP_DATA_DIR/campaign-privacy.db, the file the README says to back up,
// stays empty. The command says nothing and exits 0.
func TestDataDirWithURICharacters(t *testing.T) {
	for sub, name := range map[string]string{"question mark": "data?1", "hash": "data#1"} {
		t.Run(sub, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, name)
			out, err := run(t, map[string]string{"CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"}, "", "migrate")
			ents, _ := os.ReadDir(base)
			var stray []string
			for _, e := range ents {
				if e.Name() != name {
					info, _ := e.Info()
					stray = append(stray, e.Name()+" "+info.Mode().String())
				}
			}
			if len(stray) > 0 {
				t.Errorf("CP_DATA_DIR=%s: migrate (%v) wrote outside the data directory: %s", dir, err, strings.Join(stray, ", "))
			}
			if err == nil {
				st, serr := os.Stat(filepath.Join(dir, "campaign-privacy.db"))
				if serr != nil || st.Size() == 0 {
					t.Errorf("CP_DATA_DIR=%s: %q, but the data directory's database is empty (%v)", dir, strings.TrimSpace(out), serr)
				}
			}
		})
	}
}

// TestReviewReadOnlyCommandsCreateNothing: J46 made the proof commands
// and mistyped subcommands refuse a data directory that holds no instance,
// but the listing commands and the operator commands that only change an
// existing operator still open (create) the database first. With
// CP_DATA_DIR unset in a shell (the default ./data in whatever directory
// the operator stands in) or mistyped, `operator list` and `namespace list`
// create an empty database and four new key files and answer "no
// operators" / the default namespaces with exit 0 — the operator is told
// the instance has no operators — and `operator disable --login ana` (an
// urgent revocation) creates the same before failing with "not found".
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	for _, args := range [][]string{
		{"operator", "list"},
		{"namespace", "list"},
		{"operator", "disable", "--login", "ana"},
		{"operator", "unlock", "--login", "ana"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		out, err := run(t, map[string]string{"CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"}, "", args...)
		if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%q on a data directory holding no instance (err=%v, output %q) created %s: %s",
				args, err, strings.TrimSpace(out), dir, strings.Join(names, ", "))
		}
	}
}

// TestReviewKeyFilesPermissionsTightened: DESIGN §4b says "files 0600,
// data directory 0700", and store.Open tightens the database's files and
// the directory on every open. loadKey tightens the directory only when it
// creates a key file, and never an existing key file: key files restored
// from a backup or copied to a replica's data directory (cp without -p:
// 0644 under umask 022), in a 0755 directory — every PostgreSQL deployment,
// where the data directory holds only the keys — are loaded as they are,
// without a word. Every local user can then read the export master key
// (every data-subject file), the subject key and the receipt signing key.
func TestKeyFilesPermissionsTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := []string{"session.key", "export.key", "subject.key", "receipt.key"}
	for i, f := range files {
		key := strings.Repeat(string("0123"[i]), 64) + "\n"
		if err := os.WriteFile(filepath.Join(dir, f), []byte(key), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := loadKeys(&settings{dataDir: dir})
	if err != nil {
		return // refused: fine
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("the data directory holding the keys stays %v", st.Mode().Perm())
	}
	for _, f := range files {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s loaded while it is %v (readable by others), without a word", f, st.Mode().Perm())
		}
	}
}

// TestReviewNamespaceUpdateIgnoresFlags: `namespace update` accepts every
// flag of `namespace create` (--aec-id, --schema, --key) but
// UpdateNamespace keeps the stored ones without a word: `namespace update
// --name loyalty --aec-id 7` prints "namespace loyalty updated", exit 0,
// and the AEC namespace id is unchanged; a script or an operator believes
// the namespace now targets another field or Identity Service namespace.
func TestNamespaceUpdateRefusesFixedFields(t *testing.T) {
	env := testEnv(t, "sqlite")
	if out, err := run(t, env, "", "namespace", "create", "--name", "loyalty", "--label", "Loyalty", "--key", "@account", "--aec-id", "3"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	for _, args := range [][]string{
		{"--aec-id", "7"},
		{"--key", "@email"},
		{"--schema", "nms:visitor"},
	} {
		out, err := run(t, env, "", append([]string{"namespace", "update", "--name", "loyalty"}, args...)...)
		if err != nil {
			continue // refused: fine
		}
		list, _ := run(t, env, "", "namespace", "list")
		var line string
		for _, l := range strings.Split(list, "\n") {
			if strings.HasPrefix(l, "loyalty ") {
				line = l
			}
		}
		if !strings.Contains(line, strings.TrimPrefix(args[1], "nms:")) {
			t.Errorf("namespace update %s %s: %q, exit 0, but the namespace is unchanged: %q", args[0], args[1], strings.TrimSpace(out), line)
		}
	}
}

// TestReviewPasswordFlagValueNotEchoed: parse refuses a stray word without
// echoing it ("a stray word may be a password typed in the wrong place",
// J46), but a password typed as the value of the boolean --password-stdin
// (`operator create --login ana --password-stdin=hunter2`, the habit of
// `--password=…`) comes back in Go's flag error, printed on standard error:
// the new operator's password in the terminal's scrollback, a CI job's log
// or a deployment tool's captured output.
func TestPasswordFlagValueNotEchoed(t *testing.T) {
	const secret = "Hunter2-Sup3rSecret"
	env := testEnv(t, "sqlite")
	for _, sub := range []string{"create", "password"} {
		args := []string{"operator", sub, "--login", "ana", "--password-stdin=" + secret}
		out, err := run(t, env, "", args...)
		if err == nil {
			t.Fatalf("%q succeeded", args)
		}
		if msg := errorText(err); strings.Contains(msg, secret) || strings.Contains(out, secret) {
			t.Errorf("operator %s --password-stdin=<password>: the password is printed: %s", sub, msg)
		}
	}
}

// TestReviewInterruptedDemoDataLeavesNoHalfBatch: demo-data writes each
// batch of 2,000 recipients table by table, one transaction per table
// (store.InsertRows), so a ^C or a SIGTERM (a container stopped, a CI
// timeout) lands between the tables of a batch and leaves its recipients
// committed without the rest of their rows: recipients without visitors,
// subscriptions, propositions or tracking logs, with the process exiting on
// an error ("interrupted (9)", "cancelled or took too long"). A later run continues after
// them (ids from MAX(id)), so the data set keeps the hole: a demo or a
// benchmark of the workflows runs over recipients that are not what
// demo-data says it adds.
func TestInterruptedDemoDataLeavesNoHalfBatch(t *testing.T) {
	for attempt := 0; attempt < 3; attempt++ {
		env := testEnv(t, "sqlite")
		if out, err := run(t, env, "", "migrate"); err != nil {
			t.Fatal(err, out)
		}
		cmd := exec.Command(buildBinary(t), "demo-data", "--recipients", "300000")
		cmd.Env = cleanEnv(env)
		var buf strings.Builder
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(1500+700*attempt) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		db := plainSQL(t, env)
		count := func(table string) int64 {
			n, err := db.Int(context.Background(), "SELECT COUNT(*) FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		rcp := count("nms_recipient")
		got := map[string]int64{"nms_broad_log_rcp": count("nms_broad_log_rcp"), "nms_tracking_log_rcp": count("nms_tracking_log_rcp"),
			"nms_visitor": count("nms_visitor"), "nms_subscription": count("nms_subscription"), "nms_proposition_rcp": count("nms_proposition_rcp")}
		want := map[string]int64{"nms_broad_log_rcp": 3 * rcp, "nms_tracking_log_rcp": 2 * rcp, "nms_visitor": rcp, "nms_subscription": rcp, "nms_proposition_rcp": rcp}
		for table, n := range got {
			if n != want[table] {
				t.Errorf("after demo-data was interrupted (%s): %d recipients, %d rows in %s (want %d)",
					strings.TrimSpace(buf.String()), rcp, n, table, want[table])
			}
		}
		if t.Failed() {
			return
		}
	}
}

// TestReviewDanglingKeySymlinkStopsTheStart: a key file that is a
// symlink to a file not there (export.key -> /run/secrets/export.key, the
// secret not mounted yet: how containers hand out keys) makes loadKey
// loop for ever: ReadFile says "does not exist", a new key is written
// under a temporary name, os.Link finds the name taken (the symlink) and
// loadKey calls itself again, and again, never unwinding, so the deferred
// removal of each temporary file never runs. Every command (serve,
// migrate, workflow run) hangs at start-up instead of saying which key is
// missing, ignores SIGTERM (the loop never looks at the context), grows its
// stack without bound (850 MB after 12 minutes) and fills the data
// directory with freshly generated key files (over a million, 0600, each a
// new random key) until the disk or the inode table is full.
func TestDanglingKeySymlinkStopsTheStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "secrets", "export.key"), filepath.Join(dir, "export.key")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(buildBinary(t), "migrate")
	cmd.Env = cleanEnv(map[string]string{"CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"})
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("migrate with a dangling export.key symlink: exit 0\n%s", buf.String())
		}
		return
	case <-time.After(5 * time.Second):
	}
	// Still running: ask it to stop, as a supervisor would.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	stopped := false
	select {
	case <-done:
		stopped = true
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	ents, _ := os.ReadDir(dir)
	t.Errorf("migrate with a dangling export.key symlink did not end in 5 s (stopped by SIGTERM: %v); "+
		"the data directory holds %d entries (temporary key files)\n%.500s", stopped, len(ents), buf.String())
}

// TestReviewEmptyAddrFlagRefused: CP_ADDR="" (empty variable) is taken as
// unset, the default :8080; --addr= (an empty flag: `serve --addr
// "$ADDR"` with ADDR unset) is taken as the empty address, which
// net.Listen turns into a random port on every interface. serve starts,
// exit 0, "listening addr=[::]:40017": the load balancer, the
// healthcheck (which asks CP_ADDR) and the operator's firewall rules all
// look at another port, and nothing says the setting was empty.
func TestEmptyAddrFlagRefused(t *testing.T) {
	m := &Main{Stderr: os.Stderr, Getenv: func(string) string { return "" }}
	_, s, err := m.parse("serve", []string{"--addr="}, nil)
	if err == nil {
		t.Errorf("serve --addr= accepted: listen address %q (a random port on every interface)", s.addr)
	}
}

// TestReviewEmptyRightRefused: J46 made `operator rights --login ana
// privacyRight` (the --right forgotten) an error because it took every
// right away, exit 0. `operator rights --login ana --right "$RIGHT"` with
// RIGHT unset in a provisioning script does the same: multiFlag drops the
// empty value, and ana loses every right ("now holds: no named right",
// exit 0). An explicitly given empty --right is a mistake, not "none".
func TestEmptyRightRefused(t *testing.T) {
	env := testEnv(t, "sqlite")
	if out, err := run(t, env, "pw 1\n", "operator", "create", "--login", "ana", "--password-stdin", "--right", "privacyRight"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	out, err := run(t, env, "", "operator", "rights", "--login", "ana", "--right", "")
	if err == nil {
		list, _ := run(t, env, "", "operator", "list")
		t.Errorf("operator rights --right \"\": %q, exit 0; now:\n%s", strings.TrimSpace(out), list)
	}
}

// TestReviewSIGTERMDuringStartExitsCleanly: the README says "serve logs one
// line when SIGTERM arrives and exits 0". A SIGTERM while serve is still
// starting (after the migrations, while it rewrites the namespaces and
// creates the admin: a rolling deploy or a scale-down stopping a pod that
// is not ready yet) makes it exit 1 with "context canceled" or "The request
// was cancelled or took too long." and no shutdown line: the orchestrator
// and the operator see a failed process.
func TestSIGTERMDuringStartExitsCleanly(t *testing.T) {
	env := map[string]string{"CP_DATA_DIR": filepath.Join(t.TempDir(), "data"), "CP_ADDR": "127.0.0.1:0", "CP_LOG_LEVEL": "info"}
	cmd := exec.Command(buildBinary(t), "serve")
	cmd.Env = cleanEnv(env)
	out := &servertest.SyncBuffer{}
	cmd.Stdout = out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		all = append(all, sc.Text())
		if strings.Contains(sc.Text(), "database migrated") {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			break
		}
	}
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	err = cmd.Wait()
	if strings.Contains(strings.Join(all, "\n"), "campaign-privacy listening") {
		t.Skip("the start finished before the signal")
	}
	if err != nil {
		t.Errorf("SIGTERM during the start: %v\n%s", err, strings.Join(all, "\n"))
	}
}

// TestReviewJSONLogFormatCoversTheFatalError: with CP_LOG_FORMAT=json
// ("one JSON object a line, for a log collector") the one line that says
// why serve stopped — a port in use, a database that does not answer, a
// damaged key — is written by main as plain text ("campaign-privacy: CP_ADDR
// …: address already in use"): a collector that parses each line as JSON
// drops or mangles exactly the line the operator needs.
func TestJSONLogFormatCoversTheFatalError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, errOut, code := runBinary(t, map[string]string{"CP_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"CP_ADDR": ln.Addr().String(), "CP_LOG_FORMAT": "json"}, "serve")
	if code == 0 {
		t.Fatal("serve on a port in use: exit 0")
	}
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("CP_LOG_FORMAT=json, not a JSON line on standard error: %s", l)
		}
	}
}

// TestOnlyServeFetchesTheIdentityProvidersKeySet: the CLI shares the
// service's environment (a container, a systemd unit), CP_IMS_* included.
// Only serve answers BearerTokenLogon, so only serve fetches the key set:
// while the identity provider is down, `operator disable` still disables
// a compromised operator. serve itself refuses to start, naming the
// identity provider's answer.
func TestOnlyServeFetchesTheIdentityProvidersKeySet(t *testing.T) {
	var fetches atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
	}))
	defer idp.Close()
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			if out, err := run(t, env, "", "migrate"); err != nil {
				t.Fatalf("migrate: %v %s", err, out)
			}
			if out, err := run(t, env, "s3cret pass 1\n", "operator", "create", "--login", "ana", "--password-stdin", "--right", "privacyRight"); err != nil {
				t.Fatalf("create: %v %s", err, out)
			}
			env["CP_IMS_JWKS"] = idp.URL + "/ims/keys"
			env["CP_IMS_ISSUER"] = "https://ims-na1.adobelogin.com"
			env["CP_IMS_AUDIENCE"] = "campaign-privacy"
			fetches.Store(0)
			if out, err := run(t, env, "", "operator", "disable", "--login", "ana"); err != nil {
				t.Fatalf("operator disable fails while the identity provider is down: %v %s", errorText(err), out)
			}
			out, err := run(t, env, "", "operator", "list")
			if err != nil || !regexp.MustCompile(`ana\s+privacyRight\s+disabled`).MatchString(out) {
				t.Fatalf("the operator is not disabled: %v\n%s", err, strings.TrimSpace(out))
			}
			if n := fetches.Load(); n != 0 {
				t.Errorf("operator commands fetched the key set %d times", n)
			}
			if _, errOut, code := runBinary(t, env, "serve", "--addr=127.0.0.1:0"); code != 1 || !strings.Contains(errOut, "CP_IMS_JWKS") || !strings.Contains(errOut, "503") {
				t.Errorf("serve with the identity provider down: exit %d %s, want a refusal naming CP_IMS_JWKS and the 503", code, errOut)
			}
		})
	}
}
