package privacy

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
