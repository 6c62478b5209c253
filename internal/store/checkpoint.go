package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libtnb/sqlite"
)

// SQLite's checkpoints, off the writers' path. In WAL mode a commit
// appends its pages to the -wal file; a checkpoint copies them back into
// the database file and syncs it, and once every frame is copied and no
// reader still reads from the WAL, the next commit writes the WAL from its
// start again. Left to SQLite (wal_autocheckpoint), the checkpoint runs in
// the commit that passes 1,000 frames, on the writer's connection: the
// create flusher — the one writer every create waits on — then waited in
// the checkpoint's fdatasync for a third of its time (BenchmarkProfile/
// create, 32 callers, the trace's syscall profile).
//
// The writers' connections do not checkpoint (wal_autocheckpoint(0) in
// their DSN); a goroutine of the store does, on a connection of its own:
//
//   - every checkpointEvery, when something was committed (PRAGMA
//     data_version, no I/O), a PASSIVE checkpoint, which never waits for
//     or blocks a writer or a reader and copies what the readers'
//     snapshots allow: the bulk of the copying and syncing;
//   - once the WAL holds restartFrames, a RESTART checkpoint. PASSIVE
//     checkpoints alone never find the WAL copied whole when a write
//     begins under writes that do not pause (frames come in while they
//     copy), so SQLite never writes it from its start again: it grew
//     with everything written, 1.1 GB in 15 s of creates. The RESTART holds
//     the write lock while it copies the rest (little, after the PASSIVE
//     ones) and waits for the readers still reading from the WAL, so the
//     next commit writes it from its start. It queues with the priority
//     writes (writegate.go) and waits restartWait at most for the lock
//     and the readers (a long read, a download's, must not hold the
//     writers back); it is tried again at the next tick.
//
// Durability is unchanged: a commit is in the WAL, synced as
// synchronous(NORMAL) says (README), whether or not a checkpoint has
// copied it yet.

// checkpointEvery is how often the checkpointer looks for commits of the
// other connections.
const checkpointEvery = 100 * time.Millisecond

// restartFrames is the WAL's length (frames of a page, 4 KiB) from which
// the checkpointer restarts it: 128 MiB. A RESTART holds the writers back
// 10–50 ms (the frames committed during the PASSIVE before it, and two
// fdatasyncs); at 16 MiB creates at 32 connections met one every 250 ms.
const restartFrames = 32768

// restartWait bounds how long a RESTART checkpoint waits for the write
// lock and the readers (the checkpointer connection's busy timeout).
const restartWait = 20 * time.Millisecond

// checkpointer runs the checkpoints until cancelled, then closes done.
type checkpointer struct {
	cancel context.CancelFunc
	done   chan struct{}
	// restartFrames is restartFrames but in the store's tests.
	restartFrames atomic.Int64
	// mu lets one checkpoint of this store run at a time: SQLite fails a
	// checkpoint at once (SQLITE_BUSY, no busy handler) when another is
	// running, and the residue purge's (TRUNCATE) must not fail so.
	mu sync.Mutex
}

// startCheckpointer starts the store's checkpointer on a connection of its
// own to the file dsn names (the writers' DSN), outside the pools.
func (d *DB) startCheckpointer(ctx context.Context, dsn string) error {
	db, err := sql.Open(sqlite.DriverName, dsn)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1) // data_version is a connection's own
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWait.Milliseconds()))
	}
	if err != nil {
		_ = db.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.checkpoints = &checkpointer{cancel: cancel, done: make(chan struct{})}
	d.checkpoints.restartFrames.Store(restartFrames)
	go func() {
		defer close(d.checkpoints.done)
		defer db.Close()
		defer conn.Close()
		d.checkpointLoop(ctx, conn)
	}()
	return nil
}

func (d *DB) checkpointLoop(ctx context.Context, conn *sql.Conn) {
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	var (
		seen    int64 = -1
		failing bool  // logged once until a checkpoint succeeds
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var version int64
		err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&version)
		if err == nil && version == seen {
			continue // nothing committed since the last whole checkpoint
		}
		var busy, frames, copied int
		if err == nil {
			busy, frames, copied, err = d.checkpoint(ctx, conn, "PASSIVE")
		}
		if err == nil && int64(frames) >= d.checkpoints.restartFrames.Load() {
			busy, frames, copied, err = d.checkpoint(ctx, conn, "RESTART")
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				d.log.WarnContext(ctx, "a SQLite checkpoint failed: the -wal file keeps the commits until one succeeds", "err", err)
			}
			failing = true
		default:
			failing = false
			if busy == 0 && copied >= frames {
				seen = version // all copied: the next after a commit
			}
		}
	}
}

// walCheckpoint runs PRAGMA wal_checkpoint(mode) on q: busy when it could
// not copy every frame or (RESTART, TRUNCATE) wait for the readers, frames
// the WAL's length and copied the frames now in the database file (both
// -1 when the checkpoint did not start).
func walCheckpoint(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, mode string) (busy, frames, copied int, err error) {
	err = q.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &copied)
	return busy, frames, copied, err
}

// checkpoint is walCheckpoint on the checkpointer's conn, one checkpoint
// of the store at a time.
func (d *DB) checkpoint(ctx context.Context, conn *sql.Conn, mode string) (busy, frames, copied int, err error) {
	d.checkpoints.mu.Lock()
	defer d.checkpoints.mu.Unlock()
	run := func() error {
		busy, frames, copied, err = walCheckpoint(ctx, conn, mode)
		return err
	}
	if mode == "PASSIVE" {
		return busy, frames, copied, run()
	}
	// In the priority writers' queue, the mutex held first (the residue
	// purge's checkpoint, which may wait for the readers for long, must
	// not hold the priority writers back through this one): the create
	// flusher, which writes its batches back to back, would otherwise
	// take the write lock each time the busy handler slept.
	return busy, frames, copied, d.priorityWrite(ctx, run)
}

// stopCheckpointer stops the checkpointer and waits for it.
func (d *DB) stopCheckpointer() {
	if d.checkpoints != nil {
		d.checkpoints.cancel()
		<-d.checkpoints.done
	}
}

// checkpointTruncate copies the whole WAL into the database file and
// empties it (the residue purge's last step): busy when a reader still
// used it. SQLite fails a checkpoint at once, busy handler or not, while
// another connection checkpoints (the checkpointer of this store or of
// another process on the file): it is tried again then, every 10 ms for
// up to truncateRetry.
func (d *DB) checkpointTruncate(ctx context.Context) (busy bool, err error) {
	const truncateRetry = 3 * time.Second
	for deadline := time.Now().Add(truncateRetry); ; {
		var b, frames int
		d.checkpoints.mu.Lock()
		b, frames, _, err = walCheckpoint(ctx, d.sql, "TRUNCATE")
		d.checkpoints.mu.Unlock()
		if err != nil || b == 0 || frames != -1 || time.Now().After(deadline) {
			return b != 0, err
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
