-- An operator's live sessions, for the open-sessions quota a Logon applies:
-- its count and its oldest-first revoke read this index, not every session
-- the operator opened within the token lifetime (a client that logs on for
-- each call leaves thousands of revoked ones a day).
CREATE INDEX sessions_live ON sessions(operator_id, created) WHERE revoked_at IS NULL;
