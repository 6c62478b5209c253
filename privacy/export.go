package privacy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// The data-subject file: the XML document ACC's gdpr.jssp serves, written
// streaming (one row in memory at a time) into AES-256-GCM chunks stored in
// the database, so that any replica can serve it and memory does not grow
// with the number of rows. Each request gets a fresh 256-bit data key,
// wrapped with the export master key that lives outside the database
// (CP_EXPORT_KEY or the data directory); deleting the export row destroys
// the key, and with it the data.

// chunkSize is the plaintext size of one sealed chunk.
const chunkSize = 256 << 10

// sealer encrypts chunks of one export.
type sealer struct {
	aead      cipher.AEAD
	requestID int64
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// nonce derives a chunk's nonce from its sequence number: unique because
// every export has its own key.
func nonce(seq int) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], uint64(seq))
	return n
}

// aad binds a chunk to its request, position and finality, so chunks can be
// neither swapped between files nor reordered nor cut off unnoticed.
func aad(requestID int64, seq int, last bool) []byte {
	return []byte(fmt.Sprintf("cp-export;req=%d;seq=%d;last=%t", requestID, seq, last))
}

// wrapKey seals a data key under the master key (random nonce first).
func wrapKey(master, key []byte) ([]byte, error) {
	aead, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	n := make([]byte, aead.NonceSize())
	if _, err := rand.Read(n); err != nil {
		return nil, err
	}
	return aead.Seal(n, n, key, []byte("cp-export-key")), nil
}

func unwrapKey(master, wrapped []byte) ([]byte, error) {
	aead, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize() {
		return nil, errors.New("wrapped key too short")
	}
	return aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte("cp-export-key"))
}

// chunkWriter buffers plaintext and stores sealed chunks as they fill.
type chunkWriter struct {
	seal  sealer
	buf   []byte
	seq   int
	size  int64
	flush func(seq int, data []byte) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := chunkSize - len(w.buf)
		if room == 0 {
			if err := w.emit(false); err != nil {
				return 0, err
			}
			continue
		}
		take := min(room, len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
	}
	w.size += int64(n)
	return n, nil
}

func (w *chunkWriter) emit(last bool) error {
	sealed := w.seal.aead.Seal(nil, nonce(w.seq), w.buf, aad(w.seal.requestID, w.seq, last))
	if err := w.flush(w.seq, sealed); err != nil {
		return err
	}
	w.seq++
	w.buf = w.buf[:0]
	return nil
}

// writeExport streams the document of the collected rows into the store.
// It returns the chunks and size; the caller marks the export complete in
// the same transaction as the request's next status. A file that fails
// half-way (a full disk, a lost connection) is dropped at once: nothing
// incomplete stays behind to hold space, and the retry starts afresh.
func (s *Service) writeExport(ctx context.Context, req *store.Request, value string, found []tableIDs, linked []LinkedCount) (int, int64, error) {
	chunks, size, err := s.writeChunks(ctx, req, value, found, linked)
	if err != nil {
		if dropErr := s.db.DropExport(context.WithoutCancel(ctx), req.ID); dropErr != nil {
			s.log.WarnContext(ctx, "could not drop an incomplete export", "id", req.ID, "err", dropErr)
		}
		return 0, 0, err
	}
	if s.cfg.Metrics != nil {
		rows := 0
		for _, t := range found {
			rows += len(t.ids)
		}
		s.cfg.Metrics.ExportWritten(rows, size)
	}
	return chunks, size, nil
}

func (s *Service) writeChunks(ctx context.Context, req *store.Request, value string, found []tableIDs, linked []LinkedCount) (int, int64, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return 0, 0, err
	}
	wrapped, err := wrapKey(s.cfg.ExportKey, key)
	if err != nil {
		return 0, 0, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return 0, 0, err
	}
	if err := s.db.BeginExport(ctx, req.ID, wrapped); err != nil {
		return 0, 0, err
	}
	cw := &chunkWriter{seal: sealer{aead: aead, requestID: req.ID}, buf: make([]byte, 0, chunkSize),
		flush: func(seq int, data []byte) error {
			if err := s.failpoint("export-chunk"); err != nil {
				return err
			}
			return s.db.AppendExportChunk(ctx, req.ID, seq, data)
		}}
	w := bufio.NewWriterSize(cw, 16<<10)
	rv, b64 := exportAttr("'" + value + "'")
	fmt.Fprintf(w, "<?xml version='1.0' encoding='UTF-8'?>\n<gdprRequestData _cs=\" ()\" id=\"%d\" reconciliationValue=\"%s\"", req.ID, rv)
	if b64 {
		writeEncodedFlag(w, []string{"reconciliationValue"})
	}
	w.WriteString(">\n")
	for _, t := range found {
		if len(t.ids) == 0 {
			continue
		}
		fmt.Fprintf(w, "  <table name=\"%s\">\n", t.schema.ID())
		cols, names := rowColumns(t.schema)
		err := s.db.StreamRows(ctx, t.schema.Data.Table, cols, t.ids, func(values []any) error {
			w.WriteString("    <row")
			var encoded []string
			for i, v := range values {
				if text, ok := names[i].typ.Format(v); ok {
					text, b64 := exportAttr(text)
					if b64 {
						encoded = append(encoded, names[i].name)
					}
					w.WriteString(" " + names[i].name + "=\"" + text + "\"")
				}
			}
			writeEncodedFlag(w, encoded)
			_, err := w.WriteString("/>\n")
			return err
		})
		if err != nil {
			return 0, 0, err
		}
		w.WriteString("  </table>\n")
	}
	// The coverage report, ours (ACC's file has none): what refers to the
	// subject without being part of the subject's data.
	if len(linked) > 0 {
		w.WriteString("  <linkedNotCollected note=\"" + schemas.EscapeAttr(coverageNote) + "\">\n")
		for _, l := range linked {
			fmt.Fprintf(w, "    <table name=\"%s\" link=\"%s\" target=\"%s\" count=\"%d\"/>\n",
				schemas.EscapeAttr(l.Schema), schemas.EscapeAttr(l.Link), schemas.EscapeAttr(l.Target), l.RecordCount)
		}
		w.WriteString("  </linkedNotCollected>\n")
	}
	w.WriteString("</gdprRequestData>\n")
	if err := w.Flush(); err != nil {
		return 0, 0, err
	}
	if err := cw.emit(true); err != nil {
		return 0, 0, err
	}
	return cw.seq, cw.size, nil
}

type column struct {
	name string
	typ  *schemas.Type
}

// rowColumns lists a schema's columns and their wire names, sorted by wire
// name as ACC's file lists them: attributes by name, links as "<link>-id".
func rowColumns(s *schemas.Schema) ([]string, []column) {
	type pair struct {
		sql string
		col column
	}
	var ps []pair
	for _, a := range s.Data.Attributes {
		ps = append(ps, pair{a.SQLName, column{a.Name, schemas.TypeOf(a.Type)}})
	}
	for _, l := range s.Data.Links {
		ps = append(ps, pair{l.SQLName, column{l.WireName(), schemas.TypeOf(schemas.TypeInt64)}})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].col.name < ps[j].col.name })
	sqls := make([]string, len(ps))
	cols := make([]column, len(ps))
	for i, p := range ps {
		sqls[i], cols[i] = p.sql, p.col
	}
	return sqls, cols
}

var attrReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\n", "&#xA;", "\r", "&#xD;", "\t", "&#x9;")

func attrEscape(s string) string { return attrReplacer.Replace(s) }

// Export describes a request's data-subject file.
type Export struct {
	RequestID int64
	Size      int64
	Created   time.Time
}

// ErrPurged is the code of an export destroyed by the cleanup: the
// download answers 410 Gone.
var ErrPurged = apperr.Errorf(apperr.NotFound, "The data of this request was deleted after its retention period.")

// OpenExport returns a reader of the decrypted file of a request, one chunk
// in memory at a time; it seeks (for HTTP Range requests) by chunk. The
// reader fails if a chunk was altered, swapped, or the file cut short.
// Close it to stop its read-ahead.
func (s *Service) OpenExport(ctx context.Context, requestID int64) (*Export, io.ReadSeekCloser, error) {
	req, err := s.db.FindRequestByID(ctx, requestID)
	if err != nil {
		return nil, nil, err
	}
	if req.PurgedAt != nil {
		return nil, nil, ErrPurged
	}
	e, err := s.db.FindExport(ctx, requestID)
	if err != nil {
		return nil, nil, err
	}
	if !e.Complete {
		return nil, nil, apperr.Errorf(apperr.NotFound, "The data has not yet been generated to be downloaded.")
	}
	key, err := unwrapKey(s.cfg.ExportKey, e.WrappedKey)
	for _, previous := range s.cfg.PreviousExportKeys {
		if err == nil {
			break
		}
		// GCM's tag tells which master key wrapped the data key.
		key, err = unwrapKey(previous, e.WrappedKey)
	}
	if err != nil {
		return nil, nil, apperr.Wrap(apperr.Internal, err, "The export key does not open this file.")
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, nil, err
	}
	r := &chunkReader{ctx: ctx, db: s.db, aead: aead, requestID: requestID, chunks: e.Chunks, size: e.Size, loaded: -1}
	// The first chunk is opened now, so that a file damaged at its start
	// is an error before anything is sent (a download answers 500, not a
	// 200 cut short).
	if e.Chunks > 0 {
		if err := r.load(0); err != nil {
			r.Close()
			return nil, nil, err
		}
	}
	return &Export{RequestID: requestID, Size: e.Size, Created: e.Created}, r, nil
}

type chunkReader struct {
	ctx       context.Context
	db        *store.DB
	aead      cipher.AEAD
	requestID int64
	chunks    int
	size      int64
	pos       int64
	loaded    int    // index of the chunk in plain, -1 for none
	plain     []byte // its plaintext

	// A read-ahead goroutine fetches the next sealed chunks while the
	// current ones are decrypted and sent: memory stays at two batches.
	ahead    [][]byte // sealed chunks aheadSeq, aheadSeq+1, …
	aheadSeq int
	batches  chan batch
	nextSeq  int // first seq of the next batch on the channel
	stop     context.CancelFunc
}

type batch struct {
	chunks [][]byte
	err    error
}

// readAhead is how many sealed chunks one query fetches (1 MiB).
const readAhead = 4

// prefetch (re)starts the read-ahead at seq.
func (r *chunkReader) prefetch(seq int) {
	if r.stop != nil {
		r.stop()
	}
	ctx, stop := context.WithCancel(r.ctx)
	ch := make(chan batch, 1)
	r.batches, r.nextSeq, r.stop = ch, seq, stop
	go func() {
		defer close(ch)
		for s := seq; s < r.chunks; s += readAhead {
			var cs [][]byte
			err := r.db.ExportChunks(ctx, r.requestID, s, readAhead, func(_ int, sealed []byte) error {
				cs = append(cs, bytes.Clone(sealed))
				return nil
			})
			select {
			case ch <- batch{cs, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

func (r *chunkReader) sealed(seq int) ([]byte, error) {
	if i := seq - r.aheadSeq; i >= 0 && i < len(r.ahead) {
		return r.ahead[i], nil
	}
	if r.batches == nil || seq != r.nextSeq {
		r.prefetch(seq)
	}
	b, ok := <-r.batches
	if !ok {
		return nil, apperr.Errorf(apperr.Internal, "The export file is shorter than recorded.")
	}
	if b.err != nil {
		return nil, b.err
	}
	if len(b.chunks) == 0 {
		return nil, apperr.Errorf(apperr.Internal, "The export file is shorter than recorded.")
	}
	r.ahead, r.aheadSeq = b.chunks, seq
	r.nextSeq = seq + len(b.chunks)
	return r.ahead[0], nil
}

// load decrypts chunk seq into r.plain, unless it is there already. A
// chunk altered at rest fails GCM's check: an error, never its bytes.
func (r *chunkReader) load(seq int) error {
	if seq == r.loaded {
		return nil
	}
	if seq >= r.chunks {
		return apperr.Errorf(apperr.Internal, "The export file is shorter than recorded.")
	}
	// A download whose request has gone stops here, even with chunks
	// already read ahead.
	if err := r.ctx.Err(); err != nil {
		return apperr.Wrap(apperr.Busy, err, "The request was cancelled or took too long.")
	}
	sealed, err := r.sealed(seq)
	if err != nil {
		return err
	}
	plain, err := r.aead.Open(r.plain[:0], nonce(seq), sealed, aad(r.requestID, seq, seq == r.chunks-1))
	if err != nil {
		return apperr.Wrap(apperr.Internal, err, "The export file is damaged.")
	}
	r.plain, r.loaded = plain, seq
	return nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	seq := int(r.pos / chunkSize)
	if err := r.load(seq); err != nil {
		return 0, err
	}
	off := int(r.pos - int64(seq)*chunkSize)
	if off >= len(r.plain) {
		return 0, apperr.Errorf(apperr.Internal, "The export file is shorter than recorded.")
	}
	n := copy(p, r.plain[off:])
	r.pos += int64(n)
	return n, nil
}

// Close stops the read-ahead.
func (r *chunkReader) Close() error {
	if r.stop != nil {
		r.stop()
	}
	return nil
}

func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("bad whence")
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	r.pos = offset
	return offset, nil
}
