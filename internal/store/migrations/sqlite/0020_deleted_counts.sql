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
-- Deletes in flight at this upgrade start from their own audit lines,
-- "N record(s) deleted in <schema>", one for each DELETE they ran: what
-- those statements removed, on every attempt and round.
INSERT INTO privacy_request_deleted (request_id, schema_name, deleted)
SELECT c.request_id, substr(c.line, instr(c.line, ' record(s) deleted in ') + 22), SUM(CAST(substr(c.line, 1, instr(c.line, ' ') - 1) AS INTEGER))
FROM privacy_audit_chain c JOIN privacy_requests q ON q.id = c.request_id
WHERE q.type = 2 AND q.status < 7 AND c.line LIKE '% record(s) deleted in %'
GROUP BY c.request_id, substr(c.line, instr(c.line, ' record(s) deleted in ') + 22);
