// Package browser_test drives the web console in a real browser: headless
// Debian Chromium (/usr/bin/chromium) through playwright-core, with the
// script console.spec.js, against the whole service started in-process on
// each store. Screenshots go to artifacts/browser/<dialect>/ at the root of
// the repository.
//
// Set-up: apt-get install -y chromium && (cd interop/browser && npm ci).
// Without them the test is skipped, or fails when CI is set.
package browser_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// chromiumPath is the Debian package's browser; nothing else is used.
const chromiumPath = "/usr/bin/chromium"

// runTimeout bounds one run of the script.
const runTimeout = 120 * time.Second

// missing skips the test with an install instruction, or fails it under CI.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set: "+format, args...)
	}
	t.Skipf(format, args...)
}

func requireBrowser(t *testing.T) (node string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(t, "%s is missing: install it with `apt-get install -y chromium`", chromiumPath)
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing(t, "node_modules/playwright-core is missing: run `cd interop/browser && npm ci`")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is missing: install it with `apt-get install -y nodejs`")
	}
	return node
}

func TestConsoleInBrowser(t *testing.T) {
	node := requireBrowser(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			ctx := context.Background()
			if _, _, err := (&demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 1}).Generate(ctx, 3, nil); err != nil {
				t.Fatalf("demo data: %v", err)
			}
			env.Operator(t, "root", "root password", "admin")
			env.Operator(t, "bob", "bob password")

			artifacts := filepath.Join(root, "artifacts", "browser", dialect)
			if err := os.RemoveAll(artifacts); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(artifacts, 0o755); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithTimeout(ctx, runTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "console.spec.js")
			cmd.Env = append(os.Environ(),
				"CP_BASE_URL="+env.URL,
				"CP_ADMIN_LOGIN=root", "CP_ADMIN_PASSWORD=root password",
				"CP_NORIGHT_LOGIN=bob", "CP_NORIGHT_PASSWORD=bob password",
				"CP_ARTIFACTS="+artifacts,
				"CP_CHROMIUM="+chromiumPath,
			)
			cmd.WaitDelay = 5 * time.Second // the browser may hold the pipes
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = errors.Join(err, errors.New("timed out after "+runTimeout.String()))
			}
			if err != nil {
				t.Fatalf("console.spec.js on %s: %v\n%s\nservice log (tail):\n%s", dialect, err, out.String(), tail(env.Logs.String(), 40))
			}
			t.Logf("console.spec.js on %s:\n%s", dialect, out.String())
			for _, name := range []string{"list.png", "detail.png", "list-narrow.png"} {
				if fi, err := os.Stat(filepath.Join(artifacts, name)); err != nil || fi.Size() == 0 {
					t.Errorf("screenshot %s missing or empty: %v", name, err)
				}
			}
		})
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestAttacksInBrowser runs attacks.spec.js: the open redirect after
// logon, read by Chromium's own URL parser, and a login CSRF from a page on
// another site (served here on "localhost", another site than 127.0.0.1).
func TestAttacksInBrowser(t *testing.T) {
	node := requireBrowser(t)
	env := servertest.New(t, "sqlite", servertest.Options{})
	env.Operator(t, "ana", "ana password", "privacyRight")
	env.Operator(t, "mallory", "mallory password", "privacyRight")
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="%s/privacy/logon">
<input type="hidden" name="login" value="mallory"><input type="hidden" name="password" value="mallory password">
<input type="hidden" name="target" value="/privacy/"></form>
<script>document.getElementById('f').submit()</script>`, env.URL)
	}))
	defer attacker.Close()
	attackerURL := strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "attacks.spec.js")
	cmd.Env = append(os.Environ(), "CP_BASE_URL="+env.URL, "CP_LOGIN=ana", "CP_PASSWORD=ana password",
		"CP_ATTACKER_URL="+attackerURL, "CP_CHROMIUM="+chromiumPath)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = errors.Join(err, errors.New("timed out after "+runTimeout.String()))
	}
	if err != nil {
		t.Fatalf("attacks.spec.js: %v\n%s\nservice log (tail):\n%s", err, out.String(), tail(env.Logs.String(), 40))
	}
	t.Logf("attacks.spec.js:\n%s", out.String())
}
