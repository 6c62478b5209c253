-- How many rows of each table a delete request's DELETE statements
-- removed, added up over its attempts and rounds in the transactions of
-- the deletes themselves: what its receipt says was deleted. The rows it
-- recorded (privacy_request_rows) are what it looked for, not what went:
-- a reviewed row someone else deleted first, or an attempt that failed
-- after its first deletes, made the two differ.
CREATE TABLE privacy_request_deleted (
  request_id  INTEGER NOT NULL REFERENCES privacy_requests(id),
  schema_name TEXT   NOT NULL,
  deleted     INTEGER NOT NULL,
  PRIMARY KEY (request_id, schema_name)
);
-- Deletes in flight at this upgrade start from what they recorded, as
-- their receipts counted until now: every recorded row of one whose
-- deletes are done (deleteInProgress, 6, awaiting its purge), the rows
-- marked deleted (earlier rounds) of the others.
INSERT INTO privacy_request_deleted (request_id, schema_name, deleted)
SELECT r.request_id, r.schema_name, COUNT(*)
FROM privacy_request_rows r JOIN privacy_requests q ON q.id = r.request_id
WHERE q.type = 2 AND q.status < 7 AND (q.status = 6 OR r.deleted)
GROUP BY r.request_id, r.schema_name;
