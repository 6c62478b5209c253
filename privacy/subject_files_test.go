package privacy_test

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestDestroyedFilesResiduePurgedBeforeTheReceipt (J118): a delete destroys the
// subject's earlier access file with its wrapped key
// (DropSubjectFiles), and its receipt signs "residue purge before
// completion + destruction of every file of the subject, with its key".
// On PostgreSQL the run's residue purge rewrites only the tables the run
// touched (touchedTables) and the marks made before the run began: the
// erased file's tables are marked in the commit, during the run, and
// never added to the run's set (stepDone adds ExportTables for
// DropExport only). So the destroyed file's wrapped key and sealed chunks
// are still in privacy_exports' and privacy_export_chunks' files, as dead
// tuples, when the receipt is signed.
func TestDestroyedFilesResiduePurgedBeforeTheReceipt(t *testing.T) {
	var f *fixture
	f = newFixture(t, store.Postgres, servertest.Options{Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.Failpoint = func(name string) error {
			if name == "delete-lookup" {
				// A real clock moves on between the run's start and the
				// delete's commit; the test's stands still unless told.
				f.env.Clock.Advance(time.Second)
			}
			return nil
		}
	}})
	conn := storetest.SQLOf(t, f.env.DB)
	const email, unique = "review-erased-residue@example.com", "Reviewerasedres7c21"
	if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9611), "email": email, "first_name": unique}); err != nil {
		t.Fatal(err)
	}
	access := f.create(t, "defaultNamespace1", email, privacy.TypeAccess, false)
	f.run(t, privacy.Collect)
	if got := f.status(t, access); got != privacy.StatusComplete {
		t.Fatalf("access status %v, want complete", got)
	}
	key, err := conn.Bytes(f.ctx, "SELECT wrapped_key FROM privacy_exports WHERE request_id = ?", access)
	if err != nil || len(key) < 24 {
		t.Fatalf("wrapped key: %d bytes, %v", len(key), err)
	}
	chunk, err := conn.Bytes(f.ctx, "SELECT data FROM privacy_export_chunks WHERE request_id = ? ORDER BY seq LIMIT 1", access)
	if err != nil || len(chunk) < 64 {
		t.Fatalf("chunk: %d bytes, %v", len(chunk), err)
	}
	keyTok, chunkTok := string(key[len(key)-24:]), string(chunk[len(chunk)/2:len(chunk)/2+32])
	if n := conn.PostgresFileCount(t, f.ctx, "privacy_exports", keyTok) + conn.PostgresFileCount(t, f.ctx, "privacy_export_chunks", chunkTok); n == 0 {
		t.Fatal("the file's bytes are not found in the tables' files: the check would prove nothing")
	}

	del := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
	f.run(t, privacy.Collect)
	// The delete run alone: its receipt is signed at its end, after its
	// residue purge (a cleanup run after it would purge the marks left).
	_, err = f.env.Privacy.Run(f.ctx, privacy.Delete)
	if err != nil {
		t.Fatalf("delete run: %v", err)
	}
	if got := f.status(t, del); got != privacy.StatusComplete {
		t.Fatalf("delete status %v, want complete", got)
	}
	k := conn.PostgresFileCount(t, f.ctx, "privacy_exports", keyTok)
	ch := conn.PostgresFileCount(t, f.ctx, "privacy_export_chunks", chunkTok)
	marks, _ := conn.Int(f.ctx, "SELECT count(*) FROM privacy_residue WHERE table_name IN ('privacy_exports', 'privacy_export_chunks')")
	t.Logf("after the delete run: key %d, chunk %d, marks %d", k, ch, marks)
	if _, _, err := f.env.Privacy.OpenExport(f.ctx, access); !errors.Is(err, privacy.ErrErased) {
		t.Fatalf("the access file was not erased (%v): the check would prove nothing", err)
	}
	_, c := f.receiptOf(t, del)
	if k+ch != 0 {
		t.Errorf("after the `complete` delete (receipt method %q, residue_purge %q) the destroyed access file is still in the tables' files: "+
			"wrapped key %d time(s) in privacy_exports, sealed chunk %d time(s) in privacy_export_chunks (%d residue mark(s) left for a later run)",
			c.Method, c.ResiduePurge, k, ch, marks)
	}
}

// TestFileCollectedDuringTheDeleteIsDestroyed (J118): the delete
// skips the subject's requests a worker holds (claimed_by set), so an
// access request whose collect read the subject's rows before the delete
// and writes its file meanwhile (another replica's collect run, or a
// SOAP Start of the collect workflow, overlaps the delete run) completes
// after the delete with a full file of the erased person, decryptable
// and downloadable for 90 days, while the delete's receipt signs
// "destruction of every file of the subject, with its key".
func TestFileCollectedDuringTheDeleteIsDestroyed(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var (
			svc       func() *privacy.Service
			mu        sync.Mutex
			fired     bool
			runErr    error
			inCollect bool
		)
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.Workers = 1
			c.Failpoint = func(name string) error {
				mu.Lock()
				armed := name == "collect-after-export" && inCollect && !fired
				if armed {
					fired = true
				}
				mu.Unlock()
				if armed {
					// The delete run of another replica, while this
					// collect has written the file but not committed.
					_, runErr = svc().Run(t.Context(), privacy.Delete)
				}
				return nil
			}
		}})
		svc = func() *privacy.Service { return f.env.Privacy }
		conn := storetest.SQLOf(t, f.env.DB)
		const email, unique = "review-held-access@example.com", "Reviewheldaccess3f9b"
		if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9612), "email": email, "first_name": unique}); err != nil {
			t.Fatal(err)
		}
		del := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if got := f.status(t, del); got != privacy.StatusDeletePending {
			t.Fatalf("delete status %v, want deletePending", got)
		}
		access := f.create(t, "defaultNamespace1", email, privacy.TypeAccess, false)
		mu.Lock()
		inCollect = true
		mu.Unlock()
		f.run(t, privacy.Collect)
		if !fired {
			t.Fatal("the delete did not run during the collect: the check would prove nothing")
		}
		finishPurge(t, f, runErr)
		if got := f.status(t, del); got != privacy.StatusComplete {
			t.Fatalf("delete status %v, want complete", got)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", email); err != nil || n != 0 {
			t.Fatalf("%d recipient row(s) left (%v)", n, err)
		}
		_, c := f.receiptOf(t, del)
		if _, r, err := f.env.Privacy.OpenExport(f.ctx, access); err == nil {
			b, _ := io.ReadAll(r)
			r.Close()
			t.Errorf("after the `complete` delete (receipt method %q) the subject's access file, collected during the delete run, still opens: %d bytes, holds the erased name: %v (access request %s)",
				c.Method, len(b), strings.Contains(string(b), unique), f.status(t, access))
		}
	})
}

// TestSubjectsFilesFoundAfterARuleChange (J118): the delete finds the
// subject's other files by subject hash, and a request's hash is computed
// once, at its creation, from the value in its namespace's canonical
// form then. The default namespaces match exactly; an administrator then
// switches the e-mail namespace to the email rule (`namespace update
// --match email`, which rewrites the stored e-mails in lower case). The
// person's earlier access file, hashed over "Review.Rule@Example.COM",
// is not the delete's subject (hashed over "review.rule@example.com"),
// even for the very text it was asked under: the delete completes, the
// person's rows are gone, and the access file of their data stays,
// decryptable and downloadable. A canon version change (J112's version
// 4: "+490301234567" read again as "+49301234567") has the same effect,
// and nothing rewrites the requests' hashes.
func TestSubjectsFilesFoundAfterARuleChange(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		conn := storetest.SQLOf(t, f.env.DB)
		const email, unique = "Review.Rule@Example.COM", "Reviewrulechange51d0"
		if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9613), "email": email, "first_name": unique}); err != nil {
			t.Fatal(err)
		}
		access := f.create(t, "defaultNamespace1", email, privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		if got := f.status(t, access); got != privacy.StatusComplete {
			t.Fatalf("access status %v, want complete", got)
		}
		if doc := f.export(t, access); !strings.Contains(doc, unique) {
			t.Fatal("the access file does not hold the subject's name: the check would prove nothing")
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		del := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
		runAll(t, f)
		if got := f.status(t, del); got != privacy.StatusComplete {
			t.Fatalf("delete status %v, want complete", got)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE first_name = ?", unique); err != nil || n != 0 {
			t.Fatalf("%d recipient row(s) left (%v)", n, err)
		}
		_, c := f.receiptOf(t, del)
		if _, r, err := f.env.Privacy.OpenExport(f.ctx, access); err == nil {
			b, _ := io.ReadAll(r)
			r.Close()
			t.Errorf("after the `complete` delete (receipt method %q) the same person's earlier access file still opens: %d bytes, holds the erased name: %v",
				c.Method, len(b), strings.Contains(string(b), unique))
		}
	})
}
