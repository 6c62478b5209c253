package argon2

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	upstream "golang.org/x/crypto/argon2"
)

// TestReusedMemoryMatchesUpstream: hashes of varied cost, one after the
// other and on four goroutines at once, so that each reuses a buffer an
// earlier hash of another size and another password left behind, give
// x/crypto's keys.
func TestReusedMemoryMatchesUpstream(t *testing.T) {
	type params struct {
		password, salt []byte
		time, memory   uint32
		threads        uint8
	}
	r := rand.New(rand.NewPCG(1, 2))
	var cases []params
	for i := range 24 {
		password := make([]byte, 1+r.IntN(40))
		salt := make([]byte, 8+r.IntN(24))
		for j := range password {
			password[j] = byte(r.Uint32())
		}
		for j := range salt {
			salt[j] = byte(r.Uint32())
		}
		cases = append(cases, params{password, salt, uint32(1 + i%3), uint32(8 + r.IntN(3000)), uint8(1 + r.IntN(4))})
	}
	cases = append(cases, params{[]byte("logon"), []byte("0123456789abcdef"), 2, 19 * 1024, 1}) // the service's cost
	want := make([][]byte, len(cases))
	for i, c := range cases {
		want[i] = upstream.IDKey(c.password, c.salt, c.time, c.memory, c.threads, 32)
	}
	check := func(t *testing.T, i int) {
		c := cases[i]
		if got := IDKey(c.password, c.salt, c.time, c.memory, c.threads, 32); !bytes.Equal(got, want[i]) {
			t.Errorf("case %d (t=%d m=%d p=%d): %x, upstream %x", i, c.time, c.memory, c.threads, got, want[i])
		}
	}
	t.Run("sequential", func(t *testing.T) {
		for range 2 {
			for i := range cases {
				check(t, i)
			}
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for k := range len(cases) {
					check(t, (k+g*7)%len(cases))
				}
			})
		}
		wg.Wait()
	})
}

// BenchmarkIDKey is the service's cost, with this copy's reused memory and
// with upstream's allocation per hash (B/op tells them apart; run with
// GOMEMLIMIT to see the runtime return upstream's pages).
func BenchmarkIDKey(b *testing.B) {
	for _, v := range []struct {
		name string
		key  func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
	}{{"reused", IDKey}, {"upstream", upstream.IDKey}} {
		b.Run(fmt.Sprint(v.name), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(1)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					v.key([]byte("password"), []byte("0123456789abcdef"), 2, 19*1024, 1, 32)
				}
			})
		})
	}
}

// TestSpareBlocks: a hash leaves its blocks for the next one, which takes
// them instead of allocating its own; two at once leave two; they are let
// go idleKeep after the last hash.
func TestSpareBlocks(t *testing.T) {
	spareCount := func() int {
		spare.Lock()
		defer spare.Unlock()
		return len(spare.free)
	}
	key := func() { IDKey([]byte("password"), []byte("0123456789abcdef"), 1, 1024, 1, 32) } // 1 MiB of blocks
	dropSpare()
	key()
	if n := spareCount(); n != 1 {
		t.Fatalf("a hash left %d spare buffer(s), want 1", n)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	key()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("a hash after another allocated %d bytes: it did not take the spare blocks (1 MiB)", n)
	}
	if n := spareCount(); n != 1 {
		t.Fatalf("hashes one after the other left %d spare buffer(s), want 1", n)
	}
	a, b := takeBlocks(1024), takeBlocks(1024) // two hashes at once
	leaveBlocks(a)
	leaveBlocks(b)
	if n := spareCount(); n != 2 {
		t.Fatalf("two hashes at once left %d spare buffer(s), want 2", n)
	}
	deadline := time.Now().Add(idleKeep + 2*time.Second)
	for spareCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d spare buffer(s) still held %v after the last hash", spareCount(), idleKeep+2*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
