-- Privacy namespaces, requests and collected data (the nms:privacyNamespace,
-- nms:gdprRequest / nms:privacyRequest and nms:gdprRequestData schemas are
-- views on these tables).
CREATE TABLE privacy_namespaces (
  id                 BIGSERIAL   PRIMARY KEY,
  name               TEXT        NOT NULL UNIQUE,
  label              TEXT        NOT NULL,
  target_schema      TEXT        NOT NULL,
  reconciliation_key TEXT        NOT NULL,
  aec_id             INTEGER     NOT NULL DEFAULT 0,
  created            TIMESTAMPTZ NOT NULL,
  last_modified      TIMESTAMPTZ NOT NULL
);

CREATE TABLE privacy_requests (
  id                     BIGSERIAL   PRIMARY KEY,
  name                   TEXT        NOT NULL DEFAULT '',
  label                  TEXT        NOT NULL DEFAULT '',
  namespace_id           BIGINT      NOT NULL REFERENCES privacy_namespaces(id),
  reconciliation_value   TEXT        NOT NULL,
  type                   SMALLINT    NOT NULL,
  regulation             SMALLINT    NOT NULL,
  status                 SMALLINT    NOT NULL,
  confirm_delete_pending BOOLEAN     NOT NULL,
  confirm_deadline       TIMESTAMPTZ,
  url_file               TEXT        NOT NULL DEFAULT '',
  retry_count            INTEGER     NOT NULL DEFAULT 0,
  audit                  TEXT        NOT NULL DEFAULT '',
  operator_id            BIGINT      NOT NULL,
  dedupe_key             TEXT UNIQUE,
  created                TIMESTAMPTZ NOT NULL,
  last_modified          TIMESTAMPTZ NOT NULL
);
CREATE INDEX privacy_requests_status ON privacy_requests(status);
CREATE INDEX privacy_requests_namespace_id ON privacy_requests(namespace_id);

CREATE TABLE privacy_request_data (
  id              BIGSERIAL   PRIMARY KEY,
  gdpr_request_id BIGINT      NOT NULL REFERENCES privacy_requests(id),
  table_name      TEXT        NOT NULL,
  record_count    INTEGER     NOT NULL,
  created         TIMESTAMPTZ NOT NULL
);
CREATE INDEX privacy_request_data_gdpr_request_id ON privacy_request_data(gdpr_request_id);
