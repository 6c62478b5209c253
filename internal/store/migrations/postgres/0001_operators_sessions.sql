-- Operators and their sessions (xtk:session Logon).
CREATE TABLE operators (
  id               BIGSERIAL   PRIMARY KEY,
  login            TEXT        NOT NULL UNIQUE,
  password_hash    TEXT        NOT NULL,
  rights           TEXT        NOT NULL DEFAULT '',
  disabled         BOOLEAN     NOT NULL DEFAULT FALSE,
  failed_logons    INTEGER     NOT NULL DEFAULT 0,
  first_failure_at TIMESTAMPTZ,
  locked_until     TIMESTAMPTZ,
  created          TIMESTAMPTZ NOT NULL,
  last_modified    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
  id                  TEXT        PRIMARY KEY,
  operator_id         BIGINT      NOT NULL REFERENCES operators(id),
  security_token_hash TEXT        NOT NULL,
  created             TIMESTAMPTZ NOT NULL,
  expires             TIMESTAMPTZ NOT NULL,
  revoked_at          TIMESTAMPTZ
);
CREATE INDEX sessions_operator_id ON sessions(operator_id);
CREATE INDEX sessions_expires ON sessions(expires);
