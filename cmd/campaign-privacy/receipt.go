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
	if b, _ := pem.Decode([]byte(v)); b != nil {
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if pk, ok := k.(ed25519.PublicKey); err == nil && ok {
			return pk, nil
		}
		return nil, errors.New("the PEM block is not an Ed25519 public key")
	}
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
		if k, err := dec(v); err == nil && len(k) == ed25519.PublicKeySize {
			return ed25519.PublicKey(k), nil
		}
	}
	return nil, errors.New("a receipt public key is PEM, or 32 bytes in hex or base64")
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
	anchors, err := privacy.VerifyStoredReceipts(ctx, db, keys)
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
