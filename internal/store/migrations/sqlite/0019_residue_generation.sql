-- Each change to a marked table counts in its mark's generation. A purge
-- clears a mark only at the generation it read when it began: a delete
-- that commits while the purge runs (after its table's vacuum) keeps the
-- mark, and the next run purges again. A mark keeps its first time (the
-- age of the oldest residue).
ALTER TABLE privacy_residue ADD COLUMN gen BIGINT NOT NULL DEFAULT 0;
