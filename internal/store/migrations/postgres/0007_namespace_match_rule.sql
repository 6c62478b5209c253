-- A namespace's match rule (DESIGN.md §4b): exact (ACC's behaviour, the
-- default for every namespace that exists), email (case-folded) or phone
-- (E.164). default_region is the phone rule's region for numbers written
-- without +country ('' accepts only international numbers).
ALTER TABLE privacy_namespaces ADD COLUMN match_rule TEXT NOT NULL DEFAULT 'exact';
ALTER TABLE privacy_namespaces ADD COLUMN default_region TEXT NOT NULL DEFAULT '';
-- canonical is the canon.Version the namespace's reconciliation field was
-- last rewritten to: 0 for data written by earlier versions (raw, NFD,
-- soft hyphens…), so the next start rewrites it once and the lookup stays
-- one indexed equality.
ALTER TABLE privacy_namespaces ADD COLUMN canonical INTEGER NOT NULL DEFAULT 0;
