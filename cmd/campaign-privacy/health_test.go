package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// healthcheck runs the real binary's healthcheck with CP_ADDR set to addr
// and returns its exit code and output.
func healthcheck(t *testing.T, addr string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(buildBinary(t), append([]string{"healthcheck"}, args...)...)
	cmd.Env = append(os.Environ(), "CP_ADDR="+addr)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthcheckCommand: `campaign-privacy healthcheck` asks the server at
// CP_ADDR for /readyz and exits 0 when ready, 1 with the reason otherwise
// (nothing listening; a key file gone from the data directory).
func TestHealthcheckCommand(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			// A port nobody listens on.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			free := ln.Addr().String()
			ln.Close()
			if code, out := healthcheck(t, free); code != 1 || !strings.Contains(out, "not ready") {
				t.Fatalf("nothing listening: exit %d %s", code, out)
			}

			env := testEnv(t, dialect)
			url, _, stop := serve(t, env)
			defer stop()
			addr := strings.TrimPrefix(url, "http://")
			if code, out := healthcheck(t, addr); code != 0 || strings.TrimSpace(out) != "ready" {
				t.Fatalf("ready server: exit %d %s", code, out)
			}
			// CP_ADDR as serve reads it, listening everywhere: asked on
			// the loopback.
			_, port, _ := net.SplitHostPort(addr)
			if code, out := healthcheck(t, ":"+port); code != 0 {
				t.Fatalf("CP_ADDR=:%s: exit %d %s", port, code, out)
			}
			if code, out := healthcheck(t, "127.0.0.1:1", "--addr", addr); code != 0 {
				t.Fatalf("--addr wins over CP_ADDR: exit %d %s", code, out)
			}
			if status, body := httpGet(t, url+"/healthz"); status != 200 || body != "ok\n" {
				t.Fatalf("/healthz: %d %q", status, body)
			}

			// A key file removed under a running server: the next start
			// would make a new key, so the server says it is not ready.
			key := filepath.Join(env["CP_DATA_DIR"], "export.key")
			saved, err := os.ReadFile(key)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(key); err != nil {
				t.Fatal(err)
			}
			if code, out := healthcheck(t, addr); code != 1 || !strings.Contains(out, "not ready: keys") {
				t.Fatalf("key file gone: exit %d %s", code, out)
			}
			if status, body := httpGet(t, url+"/readyz"); status != 503 || body != "keys\n" {
				t.Fatalf("/readyz with a key file gone: %d %q", status, body)
			}
			if err := os.WriteFile(key, saved, 0o600); err != nil {
				t.Fatal(err)
			}
			if code, out := healthcheck(t, addr); code != 0 {
				t.Fatalf("key file back: exit %d %s", code, out)
			}
		})
	}
}

// TestMetricsListeners: /metrics is on the main listener for the loopback
// by default; with CP_METRICS_ADDR it moves to a listener of its own; a bad
// CP_METRICS_SUBNETS stops serve naming the setting.
func TestMetricsListeners(t *testing.T) {
	env := testEnv(t, "sqlite")
	url, _, stop := serve(t, env)
	status, body := httpGet(t, url+"/metrics")
	stop()
	if status != 200 || !strings.Contains(body, "campaign_privacy_build_info{") || !strings.Contains(body, "go_sql_open_connections") {
		t.Fatalf("/metrics on the main listener: %d\n%.300s", status, body)
	}

	env["CP_METRICS_SUBNETS"] = "10.0.0.0/8"
	url, _, stop = serve(t, env)
	status, _ = httpGet(t, url+"/metrics")
	stop()
	if status != http.StatusForbidden {
		t.Fatalf("/metrics from outside CP_METRICS_SUBNETS: %d", status)
	}

	env["CP_METRICS_SUBNETS"] = "127.0.0.1/32"
	env["CP_METRICS_ADDR"] = "127.0.0.1:0"
	env["CP_LOG_LEVEL"] = "info"
	url, out, stop := serve(t, env)
	defer stop()
	m := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no metrics listener in:\n%s", out.String())
	}
	if status, _ := httpGet(t, url+"/metrics"); status != http.StatusNotFound {
		t.Fatalf("/metrics still on the main listener: %d", status)
	}
	if status, body := httpGet(t, "http://"+m[1]+"/metrics"); status != 200 || !strings.Contains(body, "campaign_privacy_soap_calls_in_flight") {
		t.Fatalf("/metrics on its own listener: %d", status)
	}
	if status, body := httpGet(t, "http://"+m[1]+"/readyz"); status != 200 || body != "ok\n" {
		t.Fatalf("/readyz on the metrics listener: %d %q", status, body)
	}

	bad := testEnv(t, "sqlite")
	bad["CP_METRICS_SUBNETS"] = "10.0.0.300/8"
	if _, err := run(t, bad, "", "serve"); err == nil || !strings.Contains(err.Error(), "CP_METRICS_SUBNETS") {
		t.Fatalf("bad CP_METRICS_SUBNETS: %v", err)
	}
}

// TestReadyzKeyFileNoLongerAKey: the readiness check "keys" reads each
// key file as the next start would. A key file overwritten with something
// that is not a key (a botched secret mount, a config tool writing a
// placeholder) makes the next start refuse to run ("is not a valid key"):
// 503 "keys" now, not after a restart; the log says which file, never what
// it holds. Another valid key is a rotation being staged (the old key goes
// among the previous ones of the restart's settings): still ready, or
// every replica sharing the directory would drop out at once (J138); a
// start with another key that is no rotation is refused by the keys'
// fingerprints (TestReplicasMustShareTheirKeys).
func TestReadyzKeyFileNoLongerAKey(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			url, logs, stop := serve(t, env)
			if status, body := httpGet(t, url+"/readyz"); status != 200 {
				stop()
				t.Fatalf("/readyz: %d %q", status, body)
			}
			key := filepath.Join(env["CP_DATA_DIR"], "export.key")
			saved, err := os.ReadFile(key)
			if err != nil {
				stop()
				t.Fatal(err)
			}
			if err := os.WriteFile(key, []byte("REPLACE_ME\n"), 0o600); err != nil {
				stop()
				t.Fatal(err)
			}
			status, body := httpGet(t, url+"/readyz")
			// Another key: 64 hex digits, not the running one.
			other := strings.Repeat("5a", 32)
			if err := os.WriteFile(key, []byte(other+"\n"), 0o600); err != nil {
				stop()
				t.Fatal(err)
			}
			otherStatus, otherBody := httpGet(t, url+"/readyz")
			if err := os.WriteFile(key, saved, 0o600); err != nil {
				stop()
				t.Fatal(err)
			}
			backStatus, _ := httpGet(t, url+"/readyz")
			stop()
			// What the next start does with a non-key (serve loads its keys so).
			if err := os.WriteFile(key, []byte("REPLACE_ME\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = loadKeys(&settings{dataDir: env["CP_DATA_DIR"]})
			restart := "refuses to start"
			if err == nil || !strings.Contains(err.Error(), "not a valid key") {
				restart = "starts"
			}
			if status != 503 || body != "keys\n" {
				t.Errorf("/readyz with export.key overwritten by a non-key: %d %q, want 503 \"keys\" (the next start %s: %v)", status, body, restart, err)
			}
			if otherStatus != 200 {
				t.Errorf("/readyz with another key staged in export.key: %d %q, want 200 (a rotation is not a failure)", otherStatus, otherBody)
			}
			if backStatus != 200 {
				t.Errorf("/readyz with export.key back: %d, want 200", backStatus)
			}
			out := logs.String()
			if !strings.Contains(out, "reason=keys") || !strings.Contains(out, "export.key") {
				t.Errorf("the log does not say which key file:\n%s", out)
			}
			for _, secret := range []string{"REPLACE_ME", other, strings.TrimSpace(string(saved))} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds a key file's content %.8s…:\n%s", secret, out)
				}
			}
		})
	}
}

// TestReadyzSQLiteFileGone: on SQLite, the open connections go on
// answering from a database file removed from CP_DATA_DIR (a volume
// swapped, a careless clean-up), while the next start would make a new,
// empty database, and every request, receipt and audit line accepted
// meanwhile would be gone: the case the "keys" check was made for. The
// "database" check sees that the file at the path is no longer the one
// opened at the start (os.SameFile), answers 503 "database", and the log
// says why.
func TestReadyzSQLiteFileGone(t *testing.T) {
	env := testEnv(t, "sqlite")
	url, logs, stop := serve(t, env)
	defer stop()
	if status, body := httpGet(t, url+"/readyz"); status != 200 {
		t.Fatalf("/readyz: %d %q", status, body)
	}
	matches, _ := filepath.Glob(filepath.Join(env["CP_DATA_DIR"], "*.db*"))
	if len(matches) == 0 {
		t.Fatalf("no database file in %s", env["CP_DATA_DIR"])
	}
	for _, f := range matches {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := httpGet(t, url+"/readyz"); status != 503 || body != "database\n" {
		t.Errorf("/readyz with the SQLite file %v removed: %d %q, want 503 \"database\"", matches, status, body)
	}
	if out := logs.String(); !strings.Contains(out, "reason=database") || !strings.Contains(out, "no longer the one opened at the start") {
		t.Errorf("the log does not say why:\n%s", out)
	}
}
