package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestVersionBuildInfo: the built binary names the revision it was built
// from, as git knows it, with its commit time, dirty flag and Go version.
func TestVersionBuildInfo(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not a git checkout: the binary carries no revision")
	}
	out, err := exec.Command(buildBinary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"campaign-privacy ", "revision " + strings.TrimSpace(string(head)), "commit time 20", "dirty ", "go go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
}
