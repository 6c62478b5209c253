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
