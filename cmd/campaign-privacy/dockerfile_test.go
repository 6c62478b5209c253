package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// No Docker engine runs here, so the image is checked by reading it
// (issue 13): the Dockerfile builds with the README's and the Makefile's
// flags, that command really builds, and the image has what production
// needs.
func TestDockerfile(t *testing.T) {
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	dockerfile, makefile, readme, ignore := read("Dockerfile"), read("Makefile"), read("README.md"), read(".dockerignore")
	buildLine := regexp.MustCompile(`(?m)^\s*(?:RUN\s+)?(CGO_ENABLED=0 (?:go|\$\(GO\)) build [^&\n]*)`)
	commands := map[string]string{}
	for name, text := range map[string]string{"Dockerfile": dockerfile, "Makefile": makefile, "README.md": readme} {
		m := buildLine.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("%s has no `CGO_ENABLED=0 go build` line", name)
		}
		commands[name] = strings.TrimSpace(m[1])
		for _, flag := range []string{"-trimpath", "./cmd/campaign-privacy"} {
			if !strings.Contains(m[1], flag) {
				t.Errorf("%s builds without %s: %s", name, flag, m[1])
			}
		}
	}
	for _, want := range []string{
		"USER 65534:65534",
		`HEALTHCHECK`, `CMD ["/campaign-privacy", "healthcheck"]`,
		`org.opencontainers.image.revision="${REVISION}"`, "ARG REVISION",
		"/etc/ssl/certs/ca-certificates.crt",
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	for _, want := range []string{".git", "data/", "artifacts/", "node_modules/", "*.key"} {
		if !regexp.MustCompile(`(?m)^(\*\*/)?` + regexp.QuoteMeta(want) + `$`).MatchString(ignore) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	// The binary carries the time-zone database (a scratch image has none).
	deps, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(deps), "time/tzdata\n") {
		t.Error("the binary does not embed time/tzdata")
	}
	// The Dockerfile's command builds, here, into a temporary directory.
	out := t.TempDir()
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(commands["Dockerfile"], "/out/", out+"/"))
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", commands["Dockerfile"], err, b)
	}
	if b, err := exec.Command(filepath.Join(out, "campaign-privacy"), "version").Output(); err != nil || !strings.HasPrefix(string(b), "campaign-privacy ") {
		t.Fatalf("the built binary: %v %s", err, b)
	}
}
