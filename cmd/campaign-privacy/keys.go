package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The key files (DESIGN §4b): each key is a setting or a file of the data
// directory, created once with mode 0600.

// keys are the service's keys, decoded or loaded from the data directory.
type keys struct {
	session, export, subject []byte
	sessionPrevious          [][]byte
	exportPrevious           [][]byte
	receipt                  ed25519.PrivateKey
}

// loadKeys loads every key the service needs, creating the missing files.
func loadKeys(s *settings) (k keys, err error) {
	if k.session, err = loadKey(s.sessionKey, s.dataDir, "session.key", "CP_SESSION_KEY", !s.existingOnly); err != nil {
		return k, err
	}
	if k.sessionPrevious, err = decodeKeys(s.sessionPreviousKeys, "CP_SESSION_PREVIOUS_KEYS"); err != nil {
		return k, err
	}
	if k.export, err = loadKey(s.exportKey, s.dataDir, "export.key", "CP_EXPORT_KEY", !s.existingOnly); err != nil {
		return k, err
	}
	if k.exportPrevious, err = decodeKeys(s.exportPreviousKeys, "CP_EXPORT_PREVIOUS_KEYS"); err != nil {
		return k, err
	}
	if k.subject, err = loadKey(s.subjectKey, s.dataDir, "subject.key", "CP_SUBJECT_KEY", !s.existingOnly); err != nil {
		return k, err
	}
	k.receipt, err = receiptKey(s)
	return k, err
}

// receiptKey loads the receipt signing key: CP_RECEIPT_KEY (a 32-byte
// Ed25519 seed, hex or base64) or the data directory's receipt.key,
// created once (mode 0600) like the session and export keys.
func receiptKey(s *settings) (ed25519.PrivateKey, error) {
	seed, err := loadKey(s.receiptKey, s.dataDir, "receipt.key", "CP_RECEIPT_KEY", !s.existingOnly)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// existingReceiptKey is receiptKey for the proof commands: a key that does
// not exist yet has signed nothing, and is not made (a CP_DATA_DIR not
// set in the shell would otherwise print a new key's public half).
func existingReceiptKey(s *settings) (ed25519.PrivateKey, error) {
	if s.receiptKey == "" {
		path := filepath.Join(s.dataDir, "receipt.key")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no receipt key at %s: set CP_DATA_DIR to the service's data directory, or CP_RECEIPT_KEY", path)
		}
	}
	return receiptKey(s)
}

// decodeKeys decodes a comma-separated list of keys (the previous keys of a
// rotation), each as loadKey decodes a setting.
func decodeKeys(setting, name string) ([][]byte, error) {
	var keys [][]byte
	for _, k := range strings.Split(setting, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		key, err := decodeKey(k, name)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// decodeKey decodes one key: hex or base64, at least 32 bytes (the first 32
// are used).
func decodeKey(setting, name string) ([]byte, error) {
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
		if k, err := dec(setting); err == nil && len(k) >= 32 {
			return k[:32], nil
		}
	}
	return nil, fmt.Errorf("%s must be at least 32 bytes, hex or base64", name)
}

// loadKey decodes a key setting (CP_SESSION_KEY, CP_EXPORT_KEY), or reads
// the data directory's key file, creating it (32 random bytes, mode 0600)
// on first start. Replicas must share the keys: give them the same settings
// or the same data directory.
func loadKey(setting, dataDir, file, name string, create bool) ([]byte, error) {
	if setting != "" {
		return decodeKey(setting, name)
	}
	return loadKeyFile(dataDir, file, create)
}

// loadKeyFile reads a key file, or creates it when create is set (once:
// a file that another process made first is read, never made again). A
// key file readable by others is made 0600, and the directory 0700
// (DESIGN §4b); one that is a symlink to nothing is refused, not
// replaced (a secret not mounted yet).
func loadKeyFile(dataDir, file string, create bool) ([]byte, error) {
	path := filepath.Join(dataDir, file)
	if k, err := readKeyFile(path); err == nil {
		tighten(dataDir, path)
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symlink to a missing file: mount the key, or remove the link to have a new key made", path)
	}
	if !create {
		return nil, fmt.Errorf("%s does not exist: set CP_DATA_DIR to the service's data directory, or the key's setting", path)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	// An existing directory keeps its mode through MkdirAll: tighten it,
	// it holds the keys and the database (DESIGN §4b).
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	// Written whole and synced under a name of its own, then linked to its
	// name, which fails if another process made it first: a process never
	// reads a key file half written (two replicas starting together, a
	// crash).
	f, err := os.CreateTemp(dataDir, "."+file+".*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return loadKeyFile(dataDir, file, false) // another process made it first
	} else if err != nil {
		return nil, err
	}
	return k, nil
}

// readKeyFile reads and decodes an existing key file (64 hex digits, of
// which the first 32 bytes are used). Its errors never hold the file's
// content: a file that is not a key may still be half of one.
func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(k) < 32 {
		return nil, fmt.Errorf("%s is not a valid key (64 hex digits)", path)
	}
	return k[:32], nil
}

// tighten makes an existing key file this process owns 0600 when others
// may read it (a file copied in), and a data directory anyone may read
// 0700 (DESIGN §4b). Best effort: a key mounted in (a secret, a file of
// another owner or on a read-only mount) and a directory with a group
// layout of its own are the deployment's to guard, and never stop the
// start.
func tighten(dataDir, path string) {
	if fi, err := os.Stat(dataDir); err == nil && fi.Mode().Perm()&0o007 != 0 {
		_ = os.Chmod(dataDir, 0o700)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(path, 0o600)
	}
}
