package interop_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the campaign-privacy binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cp-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "campaign-privacy")
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "../cmd/campaign-privacy") // the README's flags: one build cache
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "interop: go build ../cmd/campaign-privacy: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

const (
	readyTimeout    = 20 * time.Second // server answering GET /r/test
	scriptTimeout   = 60 * time.Second // one client script
	commandTimeout  = 30 * time.Second // one CLI command (operator create, psql)
	shutdownTimeout = 15 * time.Second // exit after SIGTERM
)

// skipOrFail skips the test with an instruction on a developer machine and
// fails it under CI (env CI set), where every runtime must be present.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set: "+format, args...)
	}
	t.Skipf(format, args...)
}

// randomHex returns n random bytes as lower-case hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child
// process's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// operator is an account a client script logs on with.
type operator struct {
	login    string
	password string
	right    string // the named right it holds: admin or privacyRight
}

// instance is one campaign-privacy configuration: its environment (data
// directory, database, admin password, address) shared by the server and
// the CLI commands run against it.
type instance struct {
	env     []string // CP_* variables, added to os.Environ()
	addr    string
	baseURL string
	admin   operator
}

// newInstance prepares the environment of a fresh instance; extraEnv holds
// the store settings (CP_DATABASE_URL).
func newInstance(t *testing.T, extraEnv ...string) *instance {
	t.Helper()
	addr := freeAddr(t)
	admin := operator{login: "admin", password: randomHex(t, 12), right: "admin"}
	env := append([]string{
		"CP_ADDR=" + addr,
		"CP_DATA_DIR=" + t.TempDir(),
		"CP_ADMIN_PASSWORD=" + admin.password,
	}, extraEnv...)
	return &instance{env: env, addr: addr, baseURL: "http://" + addr, admin: admin}
}

func (in *instance) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// createOperator runs `campaign-privacy operator create` with the password
// on standard input; right "" creates an operator without named rights.
func (in *instance) createOperator(t *testing.T, login, right string) operator {
	t.Helper()
	op := operator{login: login, password: randomHex(t, 12), right: right}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	args := []string{"operator", "create", "--login", op.login, "--password-stdin"}
	if op.right != "" {
		args = append(args, "--right", op.right)
	}
	cmd := in.command(ctx, args...)
	cmd.Stdin = strings.NewReader(op.password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("operator create --login %s --right %s: %v\n%s", login, right, err, out)
	}
	return op
}

// start runs `campaign-privacy serve`, waits until GET /r/test answers 200
// and registers a cleanup that stops it with SIGTERM and checks that it
// exited cleanly. The server log is printed when the test fails.
func (in *instance) start(t *testing.T) {
	t.Helper()
	var logs syncBuffer
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), in.env...)
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	t.Cleanup(func() {
		defer func() {
			if t.Failed() {
				t.Logf("server log (%s):\n%s", in.addr, logs.String())
			}
		}()
		if cmd.ProcessState != nil {
			return // already exited (reported by the readiness check)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM server: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server did not exit cleanly after SIGTERM: %v", err)
			}
		case <-time.After(shutdownTimeout):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("server still running %s after SIGTERM; killed", shutdownTimeout)
		}
	})

	if err := waitReady(in.baseURL+"/r/test", exited); err != nil {
		t.Fatalf("server on %s not ready: %v\nserver log:\n%s", in.addr, err, logs.String())
	}
}

// waitReady polls url until it answers 200, the server exits or
// readyTimeout passes.
func waitReady(url string, exited <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("server exited early: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from GET %s within %s: %v", url, readyTimeout, last)
}

// runtimeCheck tells why a client cannot run here ("" when it can).
type runtimeCheck func() string

// probeCommand reports install when the command cannot run successfully.
func probeCommand(install string, name string, args ...string) runtimeCheck {
	return func() string {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%s %s: %v %s; install: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out), install)
		}
		return ""
	}
}

// nodeModule reports a missing node or npm package of interop/js.
func nodeModule(pkg string) runtimeCheck {
	return func() string {
		if _, err := exec.LookPath("node"); err != nil {
			return "node not found; install Node.js 20 (apt-get install nodejs npm), then: cd interop/js && npm ci"
		}
		if _, err := os.Stat(filepath.Join("js", "node_modules", filepath.FromSlash(pkg), "package.json")); err != nil {
			return fmt.Sprintf("js/node_modules/%s missing; run: cd interop/js && npm ci", pkg)
		}
		return ""
	}
}

var (
	runtimeMu     sync.Mutex
	runtimeReport = map[string]string{}
)

// requireRuntime skips (or under CI fails) the test when the client's runtime
// is missing. Each check runs once per test binary.
func requireRuntime(t *testing.T, c clientScript) {
	t.Helper()
	runtimeMu.Lock()
	why, ok := runtimeReport[c.name]
	if !ok {
		why = c.requires()
		runtimeReport[c.name] = why
	}
	runtimeMu.Unlock()
	if why != "" {
		skipOrFail(t, "%s runtime missing: %s", c.name, why)
	}
}

// runScript runs one client script against baseURL as op, with env added to
// its environment, and fails the test with the script's combined output when
// it exits non-zero.
func runScript(t *testing.T, c clientScript, baseURL string, op operator, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	args := append(append([]string{}, c.command[1:]...), baseURL, op.login, op.password, op.right)
	cmd := exec.CommandContext(ctx, c.command[0], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s timed out after %s\n%s", c.name, scriptTimeout, out)
	}
	if err != nil {
		t.Fatalf("%s as %s: %v\n%s", c.name, op.login, err, out)
	}
	t.Logf("%s as %s:\n%s", c.name, op.login, out)
}

// postgresURL returns the test database URL, CP_TEST_POSTGRES_URL: make
// test points it at a throwaway cluster (scripts/with-test-postgres), never
// at the machine's own server.
func postgresURL() string { return os.Getenv("CP_TEST_POSTGRES_URL") }

// psql runs one SQL command with the psql client (the test is stdlib only,
// so it cannot open a connection itself).
func psql(url, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql -c %q: %v: %s", sql, err, bytes.TrimSpace(out))
	}
	return nil
}

// requirePostgres skips (or under CI fails) when PostgreSQL is unreachable.
func requirePostgres(t *testing.T) string {
	t.Helper()
	url := postgresURL()
	if url == "" {
		skipOrFail(t, "CP_TEST_POSTGRES_URL is not set: run the tests through scripts/with-test-postgres (as make test does)")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		skipOrFail(t, "psql not found (apt-get install postgresql-client); it creates a schema per test server")
	}
	if err := psql(url, "SELECT 1"); err != nil {
		skipOrFail(t, "PostgreSQL unreachable at %s (%v); start one (apt-get install postgresql) "+
			"with a database \"test\" or set CP_TEST_POSTGRES_URL", url, err)
	}
	return url
}

// postgresSchema creates a schema of its own for one server and returns the
// CP_DATABASE_URL that selects it; the schema is dropped at cleanup (after
// the server, registered later, has stopped).
func postgresSchema(t *testing.T, url string) string {
	t.Helper()
	schema := "cp_it_" + randomHex(t, 6)
	if err := psql(url, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := psql(url, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}
