-- privacy_request_linked is the coverage report of a request: per ordinary
-- link into the subject's data (no owning integrity), how many rows refer
-- to the subject but are neither collected nor erased by the data model's
-- rules. Counts only, no personal data, purged with the request's counts.
CREATE TABLE privacy_request_linked (
    request_id BIGINT NOT NULL REFERENCES privacy_requests (id),
    schema_name TEXT NOT NULL,
    link_name TEXT NOT NULL,
    target TEXT NOT NULL,
    record_count BIGINT NOT NULL,
    PRIMARY KEY (request_id, schema_name, link_name)
);
