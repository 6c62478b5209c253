-- The reviewed set of a two-step delete: the rows (schema and primary key)
-- whose export the operator reviewed. The confirmed delete removes exactly
-- these, and the cleanup purges them with the rest of the request's data.
CREATE TABLE privacy_request_rows (
  request_id  BIGINT NOT NULL REFERENCES privacy_requests(id),
  schema_name TEXT   NOT NULL,
  row_id      BIGINT NOT NULL,
  PRIMARY KEY (request_id, schema_name, row_id)
);
