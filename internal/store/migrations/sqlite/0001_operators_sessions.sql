-- Operators and their sessions (xtk:session Logon).
CREATE TABLE operators (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  login            TEXT    NOT NULL UNIQUE,
  password_hash    TEXT    NOT NULL,
  rights           TEXT    NOT NULL DEFAULT '',
  disabled         BOOLEAN NOT NULL DEFAULT FALSE,
  failed_logons    INTEGER NOT NULL DEFAULT 0,
  first_failure_at DATETIME,
  locked_until     DATETIME,
  created          DATETIME NOT NULL,
  last_modified    DATETIME NOT NULL
);

CREATE TABLE sessions (
  id                  TEXT     PRIMARY KEY,
  operator_id         INTEGER  NOT NULL REFERENCES operators(id),
  security_token_hash TEXT     NOT NULL,
  created             DATETIME NOT NULL,
  expires             DATETIME NOT NULL,
  revoked_at          DATETIME
);
CREATE INDEX sessions_operator_id ON sessions(operator_id);
CREATE INDEX sessions_expires ON sessions(expires);
