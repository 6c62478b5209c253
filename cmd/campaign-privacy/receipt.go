package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// The proof commands (DESIGN.md §4b "Proof"): audit verify walks the audit
// hash chain; receipt public-key and receipt verify let anyone check an
// erasure receipt offline.

// decodePublicKey reads an Ed25519 public key: PEM (PKIX), or the 32 raw
// bytes in hex or base64; a path to a file holding one of those also works.
func decodePublicKey(v string) (ed25519.PublicKey, error) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "-----") {
		if data, err := os.ReadFile(v); err == nil {
			v = strings.TrimSpace(string(data))
		}
	}
	var key ed25519.PublicKey
	if b, _ := pem.Decode([]byte(v)); b != nil {
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		pk, ok := k.(ed25519.PublicKey)
		if err != nil || !ok {
			return nil, errors.New("the PEM block is not an Ed25519 public key")
		}
		key = pk
	}
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
		if k, err := dec(v); key == nil && err == nil && len(k) == ed25519.PublicKeySize {
			key = ed25519.PublicKey(k)
		}
	}
	if key == nil {
		return nil, errors.New("a receipt public key is PEM, or 32 bytes in hex or base64")
	}
	if smallOrder(key) {
		return nil, errors.New("the receipt public key is a point of small order, with which anyone can forge a receipt that verifies: it is no instance's key")
	}
	return key, nil
}

// smallOrderY are the encodings, sign bit aside, of the y coordinates of
// Ed25519's eight points of small order (libsodium's blocklist): 0 and 1,
// the two of order 8, p-1, and the non-canonical p and p+1. Go's
// ed25519.Verify is cofactorless: with such a key A, [k]A takes a few
// values whatever the message, so a signature (R, s) with [s]B = R + [k]A
// is found without any private key.
var smallOrderY = [][32]byte{
	{},
	{0x01},
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// smallOrder reports whether k encodes a point of small order.
func smallOrder(k ed25519.PublicKey) bool {
	var y [32]byte
	copy(y[:], k)
	y[31] &= 0x7f // the sign of x
	return slices.Contains(smallOrderY, y)
}

func (m *Main) audit(ctx context.Context, args []string) error {
	sub, args, err := m.subcommand("audit", args)
	if err != nil {
		return err
	}
	if sub != "verify" {
		return fmt.Errorf("unknown audit subcommand %q", sub)
	}
	_, s, err := m.parse("audit verify", args, nil)
	if err != nil {
		return err
	}
	if err := existingDatabase(s); err != nil { // verify, never create
		return err
	}
	db, err := store.Open(ctx, store.Config{DatabaseURL: s.databaseURL, DataDir: s.dataDir, Logger: m.logger(s)})
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := receiptPublicKeys(s)
	if err != nil {
		return err
	}
	// Also against the chain heads the signed receipts carry: the hash is
	// unkeyed, a receipt's signature is not. A receipt that does not
	// verify, is not its request's, or is missing is an error too.
	anchors, err := verifyStoredReceipts(ctx, db, keys)
	if err != nil {
		return err
	}
	head, err := db.VerifyAuditChain(ctx, anchors)
	if err != nil {
		return err // a *store.ChainBreak names the first broken seq
	}
	fmt.Fprintf(m.Stdout, "audit chain intact: %d line(s), head %s\n", head.Seq, head.Hash)
	return nil
}

// verifyStoredReceipts checks the receipts stored in db against keys and
// returns the chain heads they carry (seq → hash) for the chain's check:
// each receipt verifies, is its request's, in the request's status, and
// is the copy queryDef serves as @receipt; and every request that needs
// one has one — complete, or in error after its deletes removed rows,
// created after the chain began (a deleted receipt removes its anchor,
// and the chain after it can then be recomputed).
func verifyStoredReceipts(ctx context.Context, db *store.DB, keys []ed25519.PublicKey) (map[int64]string, error) {
	anchors := map[int64]string{}
	finished := []store.Status{store.Status(privacy.StatusComplete), store.Status(privacy.StatusError)}
	err := db.EachStoredReceipt(ctx, finished, func(r store.StoredReceipt) error {
		status := privacy.Status(r.Status)
		switch {
		case !r.Request:
			return fmt.Errorf("a receipt is stored for request %d, which does not exist", r.RequestID)
		case r.JWS == "" && r.Served == "":
			if r.Chained && (status == privacy.StatusComplete || status == privacy.StatusError && r.Deleted) {
				return fmt.Errorf("request %d is %s but has no receipt: it was removed (every such request gets one with its last audit line)", r.RequestID, status)
			}
			return nil
		case r.JWS != r.Served:
			return fmt.Errorf("request %d: the receipt queryDef serves as @receipt (privacy_requests.receipt) is not its stored receipt (privacy_receipts)", r.RequestID)
		}
		c, err := privacy.CheckReceipt(r.RequestID, status, r.JWS, keys)
		if err != nil {
			return err
		}
		anchors[c.AuditChainSeq] = c.AuditChainHead
		return nil
	})
	return anchors, err
}

// existingDatabase fails when the embedded database does not exist: a
// command that reads or changes what is there never creates it, nor the
// key files (on PostgreSQL too), in a CP_DATA_DIR not set in the shell.
func existingDatabase(s *settings) error {
	s.existingOnly = true // nor its keys
	if s.databaseURL != "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, store.SQLiteFile)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no database in %s: set CP_DATA_DIR to the service's data directory, or CP_DATABASE_URL", s.dataDir)
	}
	return nil
}

// receiptPublicKeys are the keys receipts verify with: this instance's,
// then the previous ones (a rotation).
func receiptPublicKeys(s *settings) ([]ed25519.PublicKey, error) {
	k, err := existingReceiptKey(s)
	if err != nil {
		return nil, err
	}
	previous, err := receiptPreviousKeys(s)
	return append([]ed25519.PublicKey{k.Public().(ed25519.PublicKey)}, previous...), err
}

// receiptPreviousKeys decodes CP_RECEIPT_PREVIOUS_KEYS: the public keys of
// the receipt keys before a rotation.
func receiptPreviousKeys(s *settings) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, v := range strings.Split(s.receiptPreviousKeys, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		k, err := decodePublicKey(v)
		if err != nil {
			return nil, fmt.Errorf("CP_RECEIPT_PREVIOUS_KEYS: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (m *Main) receipt(ctx context.Context, args []string) error {
	sub, args, err := m.subcommand("receipt", args)
	if err != nil {
		return err
	}
	switch sub {
	case "public-key":
		_, s, err := m.parse("receipt public-key", args, nil)
		if err != nil {
			return err
		}
		key, err := existingReceiptKey(s)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return err
		}
		return pem.Encode(m.Stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	case "verify":
		var file, publicKey string
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			file, args = args[0], args[1:]
		}
		fs, s, err := m.parse("receipt verify", args, func(fs *flag.FlagSet) {
			fs.StringVar(&publicKey, "public-key", "", "receipt public key (PEM, hex, base64, or a file)")
		})
		if err != nil {
			return err
		}
		if file == "" {
			file = fs.Arg(0)
		} else if fs.NArg() > 0 {
			// One file a call: a second one would not be verified.
			return errors.New("receipt verify checks one FILE a call: usage: receipt verify FILE [--public-key K]")
		}
		if file == "" {
			return errors.New("usage: receipt verify FILE [--public-key K]")
		}
		jws, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var keys []ed25519.PublicKey
		if publicKey != "" {
			k, err := decodePublicKey(publicKey)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		} else if keys, err = receiptPublicKeys(s); err != nil {
			return err
		}
		c, err := privacy.VerifyReceipt(string(jws), keys)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		out, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "receipt verified\n%s\n", out)
		return nil
	}
	return fmt.Errorf("unknown receipt subcommand %q", sub)
}
