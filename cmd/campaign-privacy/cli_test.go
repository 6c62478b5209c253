package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runBinary runs the real binary with only the given CP_* variables (the
// test process's own CP_* settings are left out) and returns its standard
// output, standard error and exit code.
func runBinary(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = cleanEnv(env)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

func cleanEnv(env map[string]string) []string {
	var res []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CP_") {
			res = append(res, kv)
		}
	}
	for k, v := range env {
		res = append(res, k+"="+v)
	}
	return res
}

// TestEveryCommandAnswersHelp: -h, --help and `help COMMAND` print the
// command's own usage on standard output and exit 0, without touching a
// database (issue 13).
func TestEveryCommandAnswersHelp(t *testing.T) {
	env := map[string]string{"CP_DATA_DIR": filepath.Join(t.TempDir(), "never-created")}
	groups := map[string]bool{}
	for _, c := range commandTable {
		if i := strings.IndexByte(c.Name, ' '); i > 0 {
			groups[c.Name[:i]] = true
		}
		args := strings.Fields(c.Name)
		want := "campaign-privacy " + strings.TrimSpace(c.Name+" "+c.Args)
		for _, line := range [][]string{append(args, "--help"), append(args, "-h"), append([]string{"help"}, args...)} {
			if c.Name == "help" && line[0] == "help" {
				continue
			}
			out, errOut, code := runBinary(t, env, line...)
			if code != 0 || errOut != "" {
				t.Errorf("%q: exit %d, stderr %q", line, code, errOut)
			}
			if c.Name != "help" && !strings.Contains(out, want) {
				t.Errorf("%q does not print its usage %q:\n%s", line, want, out)
			}
			if c.Name != "help" && c.Name != "version" && strings.Contains(out, "campaign-privacy version\n") {
				t.Errorf("%q prints the whole usage instead of its own", line)
			}
		}
	}
	for group := range groups {
		out, _, code := runBinary(t, env, group, "--help")
		if code != 0 || !strings.Contains(out, "campaign-privacy "+group+" ") {
			t.Errorf("%s --help: exit %d\n%s", group, code, out)
		}
	}
	if out, _, _ := runBinary(t, env, "demo-data", "--help"); !strings.Contains(out, "-seed") || !strings.Contains(out, "-recipients") {
		t.Errorf("demo-data --help does not document its flags:\n%s", out)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, _, code := runBinary(t, env, args...)
		if code != 0 || !strings.Contains(out, "campaign-privacy operator create") || !strings.Contains(out, "CP_LOG_FORMAT") {
			t.Errorf("%q: exit %d\n%s", args, code, out)
		}
	}
	if out, _, code := runBinary(t, env, "help", "settings"); code != 0 || !strings.Contains(out, "--require-security-token") {
		t.Errorf("help settings: exit %d\n%s", code, out)
	}
	if _, errOut, code := runBinary(t, env, "help", "nonsense"); code != 1 || !strings.Contains(errOut, "nonsense") {
		t.Errorf("help of an unknown command: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(env["CP_DATA_DIR"]); !os.IsNotExist(err) {
		t.Error("a help created the data directory")
	}
}

// TestBadSettingsAreErrors: a bad value of any kind of setting stops the
// command with an error naming the setting and what it accepts, before
// anything is opened; never a silent default (issue 13).
func TestBadSettingsAreErrors(t *testing.T) {
	cases := []struct {
		env, flag, value, want string
	}{
		{"CP_REQUIRE_SECURITY_TOKEN", "require-security-token", "yes", "true or false"},
		{"CP_DEDUPLICATE_REQUESTS", "deduplicate-requests", "no", "true or false"},
		{"CP_LOG_LEVEL", "log-level", "loud", "debug, info, warn or error"},
		{"CP_LOG_FORMAT", "log-format", "xml", "text or json"},
		{"CP_SESSION_TTL", "session-ttl", "soon", "positive duration"},
		{"CP_RETENTION", "retention", "-1h", "positive duration"},
		{"CP_DELETE_BATCH", "delete-batch", "0", "1 to 100000"},
		{"CP_FAULT_HTTP_STATUS", "fault-http-status", "404", "200 or 500"},
		{"CP_ALLOWED_SUBNETS", "allowed-subnets", "10.0.0.0/33", "CIDR"},
		{"CP_SOAP_ALLOWED_SUBNETS", "soap-allowed-subnets", "not-a-subnet", "CIDR"},
		{"CP_TRUSTED_PROXIES", "trusted-proxies", "0.0.0.0/0", "0.0.0.0/0"},
		{"CP_WORKFLOW_SCHEDULE", "workflow-schedule", "weekly", "daily"},
	}
	dir := filepath.Join(t.TempDir(), "never-created")
	for _, c := range cases {
		_, errOut, code := runBinary(t, map[string]string{"CP_DATA_DIR": dir, c.env: c.value}, "migrate")
		if code != 1 || !strings.Contains(errOut, c.env) || !strings.Contains(errOut, c.want) {
			t.Errorf("%s=%s: exit %d, %q", c.env, c.value, code, errOut)
		}
		_, errOut, code = runBinary(t, map[string]string{"CP_DATA_DIR": dir}, "migrate", "--"+c.flag+"="+c.value)
		if code != 1 || !strings.Contains(errOut, c.flag) || !strings.Contains(errOut, c.want) {
			t.Errorf("--%s=%s: exit %d, %q", c.flag, c.value, code, errOut)
		}
	}
	// The flag wins over the variable, and a bare boolean flag means true.
	_, errOut, code := runBinary(t, map[string]string{"CP_DATA_DIR": dir, "CP_ADDR": "nonsense"}, "serve")
	if code != 1 || !strings.Contains(errOut, "CP_ADDR") {
		t.Errorf("a bad address: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("a bad setting still created the data directory")
	}
}

// TestPortInUseComesFirst: serve on a port already taken fails before it
// migrates a database or schedules the workflows (issue 13).
func TestPortInUseComesFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	_, errOut, code := runBinary(t, map[string]string{"CP_DATA_DIR": dir, "CP_ADDR": ln.Addr().String()}, "serve")
	if code != 1 || !strings.Contains(errOut, "address already in use") || !strings.Contains(errOut, "CP_ADDR") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	for _, line := range []string{"database migrated", "workflows scheduled"} {
		if strings.Contains(errOut, line) {
			t.Errorf("%q logged before the port error:\n%s", line, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "campaign-privacy.db")); !os.IsNotExist(err) {
		t.Error("the database was created before the port error")
	}
}

// TestServeLogFormatsAndShutdown: serve logs text or JSON as
// CP_LOG_FORMAT says, and SIGTERM ends it with one shutdown line and exit
// 0 (issue 13).
func TestServeLogFormatsAndShutdown(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			env := map[string]string{"CP_DATA_DIR": t.TempDir(), "CP_ADDR": "127.0.0.1:0", "CP_LOG_FORMAT": format, "CP_ADMIN_PASSWORD": "correct horse battery"}
			cmd := exec.Command(buildBinary(t), "serve")
			cmd.Env = cleanEnv(env)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var all []string
			deadline := time.After(60 * time.Second)
		wait:
			for {
				select {
				case l := <-lines:
					all = append(all, l)
					if strings.Contains(l, "campaign-privacy listening") {
						break wait
					}
				case <-deadline:
					cmd.Process.Kill()
					t.Fatalf("serve did not start:\n%s", strings.Join(all, "\n"))
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			for l := range lines {
				all = append(all, l)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, strings.Join(all, "\n"))
			}
			shutdown := 0
			for _, l := range all {
				if strings.Contains(l, "shutting down") {
					shutdown++
				}
				if format == "json" {
					var rec map[string]any
					if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
						t.Errorf("not a JSON log line: %s", l)
					}
				} else if !regexp.MustCompile(`^time=\S+ level=\w+ msg=`).MatchString(l) {
					t.Errorf("not a text log line: %s", l)
				}
			}
			if shutdown != 1 {
				t.Errorf("%d shutdown lines:\n%s", shutdown, strings.Join(all, "\n"))
			}
		})
	}
}
