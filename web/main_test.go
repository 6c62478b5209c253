package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// server, pool, worker and stream a test starts must be stopped (security
// bar #113).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
