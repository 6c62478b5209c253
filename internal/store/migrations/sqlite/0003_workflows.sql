-- Workflow state of privacy requests and their encrypted exports.
ALTER TABLE privacy_requests ADD COLUMN claimed_by TEXT;
ALTER TABLE privacy_requests ADD COLUMN claimed_until DATETIME;
ALTER TABLE privacy_requests ADD COLUMN next_attempt_at DATETIME;
ALTER TABLE privacy_requests ADD COLUMN purged_at DATETIME;
CREATE INDEX privacy_requests_claimed_until ON privacy_requests(claimed_until);

-- One export per request: the data-subject file, AES-256-GCM in chunks
-- under a per-request data key, itself wrapped with the export master key
-- (kept outside the database). Deleting the row destroys the key.
CREATE TABLE privacy_exports (
  request_id  INTEGER  PRIMARY KEY REFERENCES privacy_requests(id),
  wrapped_key BLOB     NOT NULL,
  chunks      INTEGER  NOT NULL DEFAULT 0,
  size        INTEGER  NOT NULL DEFAULT 0,
  complete    BOOLEAN  NOT NULL DEFAULT FALSE,
  created     DATETIME NOT NULL
);

CREATE TABLE privacy_export_chunks (
  request_id INTEGER NOT NULL REFERENCES privacy_exports(request_id),
  seq        INTEGER NOT NULL,
  data       BLOB    NOT NULL,
  PRIMARY KEY (request_id, seq)
);
