-- What earlier migrations left unfilled for data written before them.
--
-- Receipts issued at migrations 0008 to 0010 are in privacy_receipts only:
-- 0011 added privacy_requests.receipt empty, and xtk:queryDef reads
-- @receipt of nms:gdprRequest from there.
UPDATE privacy_requests
SET receipt = (SELECT r.jws FROM privacy_receipts r WHERE r.request_id = privacy_requests.id)
WHERE receipt IS NULL AND id IN (SELECT request_id FROM privacy_receipts);
-- Then, in Go (store.migrationSteps, the same transaction), the deleted
-- counts of the deletes in flight get the "N record(s) deleted in X"
-- lines written before migration 0008: they are in the request's audit
-- text only, and 0020 seeded the counts from the chain alone.
