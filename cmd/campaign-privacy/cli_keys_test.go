package main

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
)

// TestKeyCreatedOnceUnderConcurrentStarts: replicas may share the
// data directory (keys.go: "give them the same settings or the same data
// directory"). Two starting at once on a fresh directory both reach
// loadKey: the one whose O_EXCL create loses reads the file the other has
// created but not written yet, and stops with "is not a valid key".
func TestKeyCreatedOnceUnderConcurrentStarts(t *testing.T) {
	for i := 0; i < 300; i++ {
		dir := filepath.Join(t.TempDir(), "data")
		var wg sync.WaitGroup
		keys := make([][]byte, 4)
		errs := make([]error, 4)
		for g := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys[g], errs[g] = loadKey("", dir, "session.key", "CP_SESSION_KEY", true)
			}()
		}
		wg.Wait()
		for g := range keys {
			if errs[g] != nil {
				t.Fatalf("round %d: a concurrent start failed: %v", i, errs[g])
			}
			if !bytes.Equal(keys[g], keys[0]) {
				t.Fatalf("round %d: two starts use different keys", i)
			}
		}
	}
}
