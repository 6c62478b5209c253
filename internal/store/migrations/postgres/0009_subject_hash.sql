-- subject_hash is a keyed hash (HMAC-SHA256, the instance's subject key)
-- of a request's canonical reconciliation value: the DPO finds every
-- request about one person by typing the value, matched through the hash
-- (never a LIKE), and the hash survives the 90-day purge of the value
-- itself. The receipt carries the same hash.
ALTER TABLE privacy_requests ADD COLUMN subject_hash TEXT;
CREATE INDEX privacy_requests_subject_hash ON privacy_requests (subject_hash);
