-- A confirmed two-step delete that meets rows it did not review deletes
-- what was reviewed and goes back to review with the new rows. The rows
-- its rounds deleted stay recorded, marked deleted: never deleted again,
-- but followed, while they stay gone, to rows written for them since (a
-- delivery log of the recipient the first round deleted), which the value
-- no longer leads to. A reviewed row, or a row a one-step delete's
-- attempt found, is not marked.
ALTER TABLE privacy_request_rows ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
