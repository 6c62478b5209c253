-- The audit chain is append-only (security-bar #102). Triggers refuse
-- every UPDATE, DELETE and TRUNCATE of its lines and the DELETE or
-- TRUNCATE of its head (which each append updates), whoever runs them,
-- the tables' owner included. The role that migrates (the service's)
-- also gives those privileges up: it is refused before the trigger runs.
-- Undoing either is a deliberate act of the owner or a superuser
-- (ALTER TABLE … DISABLE TRIGGER, a GRANT), which campaign-privacy audit
-- verify and the receipts held outside still catch. It can be applied
-- again without error.
CREATE OR REPLACE FUNCTION privacy_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS privacy_audit_chain_append_only ON privacy_audit_chain;
CREATE TRIGGER privacy_audit_chain_append_only BEFORE UPDATE OR DELETE ON privacy_audit_chain
  FOR EACH ROW EXECUTE FUNCTION privacy_audit_append_only();
DROP TRIGGER IF EXISTS privacy_audit_chain_no_truncate ON privacy_audit_chain;
CREATE TRIGGER privacy_audit_chain_no_truncate BEFORE TRUNCATE ON privacy_audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_append_only();
DROP TRIGGER IF EXISTS privacy_audit_head_kept ON privacy_audit_head;
CREATE TRIGGER privacy_audit_head_kept BEFORE DELETE ON privacy_audit_head
  FOR EACH ROW EXECUTE FUNCTION privacy_audit_append_only();
DROP TRIGGER IF EXISTS privacy_audit_head_no_truncate ON privacy_audit_head;
CREATE TRIGGER privacy_audit_head_no_truncate BEFORE TRUNCATE ON privacy_audit_head
  FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON privacy_audit_chain FROM CURRENT_USER;
REVOKE DELETE, TRUNCATE ON privacy_audit_head FROM CURRENT_USER;
