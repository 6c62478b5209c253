-- A mark is now one row for each change to a table (a delete's or a
-- cleanup's transaction), appended without a lock: marking the table's one
-- row again made every delete transaction wait for the others. A purge
-- clears the rows it read when it began, up to their largest id: a
-- delete that commits while the purge runs (after its table's vacuum)
-- leaves its own row, and the next run purges again. A table's age is its
-- oldest row's.
ALTER TABLE privacy_residue DROP CONSTRAINT privacy_residue_pkey;
ALTER TABLE privacy_residue ADD COLUMN id BIGSERIAL PRIMARY KEY;
CREATE INDEX privacy_residue_table ON privacy_residue (table_name, id);
