package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"

	moderncsqlite "modernc.org/sqlite"
)

// SQLite's driver copies every blob a row returns into a new slice: a
// download left its whole stored size as garbage, and 20 downloads at once
// grew the heap to the collector's target (security-bar #84). A function
// of ours called in the statement gets the chunk as a view of SQLite's own
// memory instead (the driver's VolatileArgs), and hands it to the reader
// there, before SQLite moves to the next row.

// chunkFunc is the SQL name of that function: chunkFunc(sink, seq, data)
// hands the chunk to the read in progress whose id is sink.
const chunkFunc = "cp_export_chunk"

// chunkSinks are the SQLite reads of ExportChunks in progress, by id.
var (
	chunkSinks  sync.Map // int64 → *chunkSink
	chunkSinkID atomic.Int64
)

// chunkSink is one read: its chunks' order and the first error, returned
// as is by exportChunksSQLite (SQLite's error carries only its text).
type chunkSink struct {
	chunkOrder
	err error
}

func init() {
	moderncsqlite.MustRegisterFunction(chunkFunc, &moderncsqlite.FunctionImpl{
		NArgs:        3,
		VolatileArgs: true, // sealed is SQLite's memory: fn must not keep it, as ExportChunks says
		Scalar:       handChunk,
	})
}

// handChunk is chunkFunc: it runs inside the statement's step, on the
// goroutine reading the rows.
func handChunk(_ *moderncsqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	id, _ := args[0].(int64)
	v, ok := chunkSinks.Load(id)
	if !ok {
		return nil, errors.New(chunkFunc + ": no read in progress")
	}
	s := v.(*chunkSink)
	seq, _ := args[1].(int64)
	sealed, _ := args[2].([]byte)
	if s.err == nil {
		s.err = s.hand(int(seq), sealed)
	}
	return nil, s.err
}

// exportChunksSQLite is ExportChunks on SQLite, through chunkFunc.
func (d *DB) exportChunksSQLite(ctx context.Context, requestID int64, seq, n int, fn func(seq int, sealed []byte) error) error {
	id := chunkSinkID.Add(1)
	s := &chunkSink{chunkOrder: chunkOrder{want: seq, fn: fn}}
	chunkSinks.Store(id, s)
	defer chunkSinks.Delete(id)
	rows, err := d.readQuery(ctx, "SELECT "+chunkFunc+"(?, seq, data) FROM privacy_export_chunks WHERE request_id = ? AND seq >= ? AND seq < ? ORDER BY seq",
		id, requestID, seq, seq+n)
	if err != nil {
		return translate(err, "Export chunk")
	}
	defer rows.Close()
	for rows.Next() {
	}
	if s.err != nil {
		return s.err
	}
	return translate(rows.Err(), "Export chunk")
}
