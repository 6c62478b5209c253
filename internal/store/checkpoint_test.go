package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestSQLiteCheckpointsInTheBackground: the writers' connections do not
// checkpoint (wal_autocheckpoint(0)); the store's checkpointer copies the
// commits from the -wal file into the database file while the store runs.
// Without it the database file would not grow until the store closed,
// and the -wal file would hold every commit.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, time.Now)
	ns := testNamespace(t, db)
	path := filepath.Join(storetest.ConfigOf(t, db).DataDir, store.SQLiteFile)
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	const creates, label = 400, 2048 // 800 KiB of labels
	var g errgroup.Group
	g.SetLimit(16)
	for i := range creates {
		g.Go(func() error {
			_, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: fmt.Sprintf("v%d", i),
				Label: strings.Repeat("l", label), Type: 1, Regulation: 1}, "u", "Request created.")
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	want := before + creates*label*3/4
	deadline := time.Now().Add(10 * time.Second)
	for size() < want {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes 10 s after %d creates of %d-byte labels (%d before): the commits were not checkpointed", size(), creates, label, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSQLiteWALRestartsUnderSteadyWrites: under writes that never pause,
// every PASSIVE checkpoint finds new frames after the ones it copied, so
// the WAL is never copied whole when a write begins and SQLite never
// writes it from its start again: the checkpointer's RESTART does, once
// it passes restartFrames (here 1 MiB). Without it the -wal file grew by
// everything written (1.1 GB in 15 s of creates at 32 connections); with
// it, it holds what comes in between two of the checkpointer's ticks.
func TestSQLiteWALRestartsUnderSteadyWrites(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, time.Now)
	db.SetWALRestartFramesForTest(256)
	ns := testNamespace(t, db)
	wal := filepath.Join(storetest.ConfigOf(t, db).DataDir, store.SQLiteFile) + "-wal"
	const label = 16 << 10
	var written int64
	var g errgroup.Group
	g.SetLimit(8)
	for i, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); i++ {
		g.Go(func() error {
			_, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: fmt.Sprintf("v%d", i),
				Label: strings.Repeat("l", label), Type: 1, Regulation: 1}, "u", "Request created.")
			return err
		})
		written += label
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > written/3 {
		t.Fatalf("-wal file of %d MiB after %d MiB written without a pause: it was not restarted", fi.Size()>>20, written>>20)
	}
}
