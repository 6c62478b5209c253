package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestExportChunksCancelMidStream: a context cancelled while the
// chunks stream (fn cancels it after the first), and fn's error in the
// middle of a large chunk's stream: the pool's connections serve the next
// reads (many of them, more than the pool holds, at once), in the binary
// and the simple protocol.
func TestExportChunksCancelMidStream(t *testing.T) {
	for _, simple := range []bool{false, true} {
		name := "extended"
		if simple {
			name = "simple"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			cfg := storetest.Config(t, store.Postgres)
			if simple {
				cfg.DatabaseURL = storetest.SimpleProtocol(t, cfg.DatabaseURL)
			}
			db := storetest.OpenConfig(t, cfg, storetest.NewClock().Now)
			id := beginExport(t, db)
			chunk := func(seq int) []byte {
				b := make([]byte, 300_000+seq)
				for i := range b {
					b[i] = byte(i*7 + seq)
				}
				return b
			}
			for seq := range 8 {
				if err := db.AppendExportChunk(ctx, id, "w", seq, chunk(seq)); err != nil {
					t.Fatal(err)
				}
			}
			for range 15 {
				cctx, cancel := context.WithCancel(ctx)
				err := db.ExportChunks(cctx, id, 0, 8, func(seq int, sealed []byte) error {
					cancel()
					time.Sleep(5 * time.Millisecond)
					return nil
				})
				cancel()
				t.Logf("cancelled mid-stream: %v", err)
			}
			stop := errors.New("stop")
			for range 15 {
				if err := db.ExportChunks(ctx, id, 0, 8, func(int, []byte) error { return stop }); err != stop {
					t.Fatalf("fn's error: %v", err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					defer cancel()
					n := 0
					err := db.ExportChunks(rctx, id, 0, 8, func(seq int, sealed []byte) error {
						if !bytes.Equal(sealed, chunk(seq)) {
							t.Errorf("chunk %d not its own", seq)
						}
						n++
						time.Sleep(time.Millisecond)
						return nil
					})
					if err == nil && n != 8 {
						t.Errorf("%d chunks", n)
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("a read after the cancelled ones: %v", err)
				}
			}
		})
	}
}
