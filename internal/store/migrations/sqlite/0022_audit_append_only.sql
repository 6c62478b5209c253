-- The audit chain is append-only (security-bar #102). Triggers refuse
-- every UPDATE and DELETE of its lines, an INSERT of a seq not after the
-- last (INSERT OR REPLACE deletes the lines it conflicts with, on any
-- unique index, without firing the DELETE trigger: a line it removed could
-- not be written again), and the DELETE of its head (which each append
-- updates). SQLite has no roles: whoever may write the file
-- may drop them, a deliberate act that campaign-privacy audit verify and
-- the receipts held outside still catch. It can be applied again without
-- error.
CREATE TRIGGER IF NOT EXISTS privacy_audit_chain_no_update BEFORE UPDATE ON privacy_audit_chain
BEGIN SELECT RAISE(ABORT, 'the audit is append-only: UPDATE on privacy_audit_chain refused'); END;
CREATE TRIGGER IF NOT EXISTS privacy_audit_chain_no_delete BEFORE DELETE ON privacy_audit_chain
BEGIN SELECT RAISE(ABORT, 'the audit is append-only: DELETE on privacy_audit_chain refused'); END;
CREATE TRIGGER IF NOT EXISTS privacy_audit_head_kept BEFORE DELETE ON privacy_audit_head
BEGIN SELECT RAISE(ABORT, 'the audit is append-only: DELETE on privacy_audit_head refused'); END;
CREATE TRIGGER IF NOT EXISTS privacy_audit_chain_no_replace BEFORE INSERT ON privacy_audit_chain
WHEN NEW.seq <= (SELECT coalesce(max(seq), 0) FROM privacy_audit_chain)
BEGIN SELECT RAISE(ABORT, 'the audit is append-only: INSERT before the last line of privacy_audit_chain refused'); END;
