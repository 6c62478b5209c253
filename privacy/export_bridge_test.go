package privacy

import (
	"context"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// SealUncompressed seals the plaintext chunks of request requestID's file
// as a file written before compression was (no codec), under the data key
// wrapped in wrapped: what such a file's stored chunks are.
func SealUncompressed(master, wrapped []byte, requestID int64, plains [][]byte) ([][]byte, error) {
	key, err := unwrapKey(master, wrapped)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	sealed := make([][]byte, len(plains))
	for seq, p := range plains {
		sealed[seq] = aead.Seal(nil, nonce(seq), p, appendAAD(nil, requestID, seq, seq == len(plains)-1, ""))
	}
	return sealed, nil
}

// LookupTogether looks up the subjects of the requests ids as a claim does,
// together, and each request alone: what each lookup found, table by table
// (schema → ids), or its error, both ways.
func (s *Service) LookupTogether(ctx context.Context, ids []int64) (together, alone []map[string][]int64, errsTogether, errsAlone []error, err error) {
	reqs := make([]*store.Request, len(ids))
	for i, id := range ids {
		if reqs[i], err = s.db.FindRequestByID(ctx, id); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	tables := func(l lookedUp) map[string][]int64 {
		m := map[string][]int64{}
		for _, t := range l.found {
			if len(t.ids) > 0 {
				m[t.schema.ID()] = t.ids
			}
		}
		return m
	}
	found, errsTogether := s.lookupAll(ctx, reqs)
	for i, req := range reqs {
		together = append(together, tables(found[i]))
		one, errs := s.lookupAll(ctx, []*store.Request{req})
		alone, errsAlone = append(alone, tables(one[0])), append(errsAlone, errs[0])
	}
	return together, alone, errsTogether, errsAlone, nil
}
