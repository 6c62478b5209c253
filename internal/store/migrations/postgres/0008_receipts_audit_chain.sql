-- The audit as one hash chain for the instance (DESIGN.md §4b "Proof"):
-- every audit line is also appended here, in the transaction that writes
-- it, each row hashing its predecessor. at is TEXT in the exact form that
-- was hashed, so no driver's time handling can change a verified value.
-- Lines written before this migration stay in privacy_requests.audit only.
CREATE TABLE privacy_audit_chain (
  seq        BIGINT  PRIMARY KEY,
  request_id BIGINT  NOT NULL,
  at         TEXT    NOT NULL,
  line       TEXT    NOT NULL,
  prev_hash  TEXT    NOT NULL,
  hash       TEXT    NOT NULL
);
CREATE INDEX privacy_audit_chain_request_id ON privacy_audit_chain(request_id);

-- One row: the last seq and hash. Appends lock it, so the chain cannot
-- fork, and deleting the chain's last rows no longer matches it.
CREATE TABLE privacy_audit_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  BIGINT  NOT NULL,
  hash TEXT    NOT NULL
);
INSERT INTO privacy_audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The signed erasure receipt of a finished request (a JWS, no personal data).
CREATE TABLE privacy_receipts (
  request_id BIGINT      PRIMARY KEY,
  jws        TEXT     NOT NULL,
  created    TIMESTAMPTZ NOT NULL
);
