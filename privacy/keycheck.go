package privacy

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Replicas must share their keys (DESIGN §4b), and each one made the key
// files missing from its own data directory: two replicas with data
// directories of their own both started, and a file collected on one did
// not open on the other, a search by value missed the requests hashed on
// the other, receipts were signed with two keys. The database keeps a
// fingerprint of each key the first start used (instance_options, as
// XtkDatabaseId), and a start with another key is refused.

// The instance options that hold the keys' fingerprints.
const (
	optionExportKey  = "CpExportKeyFingerprint"
	optionSubjectKey = "CpSubjectKeyFingerprint"
	optionReceiptKey = "CpReceiptPublicKey"
)

// InstanceKey is a secret key of another part of the service that every
// replica must share as well (the session signing key: a token signed by
// one replica must verify on the next), for CheckKeys: Option names the
// instance option that keeps its fingerprint, Name the setting for the
// messages.
type InstanceKey struct {
	Name, Option string
	Current      []byte
	Previous     [][]byte
}

// keyFingerprint is what the database keeps of a secret key: an
// HMAC-SHA256 under the key of a fixed label naming its use. It tells two
// keys apart and gives nothing of the key away.
func keyFingerprint(key []byte, use string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("campaign-privacy key fingerprint: " + use))
	return hex.EncodeToString(mac.Sum(nil))
}

// CheckKeys refuses keys that are not the instance's: the export key, the
// subject key, the receipt key and others (the session key) are each
// checked against the fingerprint stored by the first start. A rotation is accepted where the
// instance's key is among this process's previous ones (the export key's
// CP_EXPORT_PREVIOUS_KEYS, the receipt key's CP_RECEIPT_PREVIOUS_KEYS): the
// new key becomes the instance's, and a replica still on the old one is
// refused from then on. The subject key has no rotation: another one
// leaves every earlier request unfindable by value. A key the process
// made for itself (a test's random subject key) is not checked.
func (s *Service) CheckKeys(ctx context.Context, others ...InstanceKey) error {
	type key struct {
		name, option, current string
		previous              []string
	}
	var keys []key
	for _, o := range others {
		if len(o.Current) == 0 {
			continue
		}
		k := key{name: o.Name, option: o.Option, current: keyFingerprint(o.Current, o.Option)}
		for _, p := range o.Previous {
			k.previous = append(k.previous, keyFingerprint(p, o.Option))
		}
		keys = append(keys, k)
	}
	if len(s.cfg.ExportKey) > 0 {
		k := key{name: "export key (CP_EXPORT_KEY, export.key)", option: optionExportKey, current: keyFingerprint(s.cfg.ExportKey, "export")}
		for _, p := range s.cfg.PreviousExportKeys {
			k.previous = append(k.previous, keyFingerprint(p, "export"))
		}
		keys = append(keys, k)
	}
	if !s.randomSubjectKey {
		keys = append(keys, key{name: "subject key (CP_SUBJECT_KEY, subject.key)", option: optionSubjectKey,
			current: keyFingerprint(s.cfg.SubjectKey, "subject")})
	}
	if s.cfg.ReceiptKey != nil {
		k := key{name: "receipt key (CP_RECEIPT_KEY, receipt.key)", option: optionReceiptKey,
			current: hex.EncodeToString(s.cfg.ReceiptKey.Public().(ed25519.PublicKey))}
		for _, p := range s.cfg.ReceiptPreviousKeys {
			k.previous = append(k.previous, hex.EncodeToString(p))
		}
		keys = append(keys, k)
	}
	var differ []string
	for _, k := range keys {
		ok, err := s.instanceKey(ctx, k.name, k.option, k.current, k.previous)
		if err != nil {
			return err
		}
		if !ok {
			differ = append(differ, k.name)
		}
	}
	if len(differ) > 0 {
		is := "is not the key"
		if len(differ) > 1 {
			is = "are not the keys"
		}
		return apperr.Errorf(apperr.Conflict, "This process's %s %s this database was first started with (by another replica, or an earlier start): replicas must share the key files (the same CP_DATA_DIR, or the same key settings). To rotate a key, list the instance's key among the previous ones.",
			strings.Join(differ, ", "), is)
	}
	return nil
}

// instanceKey reports whether current is the instance's key, recording it
// if the instance has none yet, or taking it over from one of previous (a
// rotation).
func (s *Service) instanceKey(ctx context.Context, name, option, current string, previous []string) (bool, error) {
	for range 2 { // once more if another replica rotated it meanwhile
		stored, err := s.db.ClaimOption(ctx, option, current)
		if err != nil || stored == current {
			return err == nil, err
		}
		if !slices.Contains(previous, stored) {
			return false, nil
		}
		if ok, err := s.db.ReplaceOption(ctx, option, stored, current); err != nil || ok {
			if ok {
				s.log.InfoContext(ctx, "key rotated: the new key is the instance's from now on", "key", name)
			}
			return ok, err
		}
	}
	return false, nil
}
