-- A claim takes the oldest requests of one status at a time
-- (store.ClaimRequests): an index on (status, id) serves it in id order and
-- stops at the rows it takes. On status alone the database gathered and
-- sorted every waiting request for each claim. It also serves every other
-- status = ? ORDER BY id read (the queue's oldest request, the console's
-- list, expiring confirmations), so it replaces the index on status.
DROP INDEX privacy_requests_status;
CREATE INDEX privacy_requests_status_id ON privacy_requests (status, id);
