-- Tables a delete or a cleanup changed whose residue (old row versions,
-- freed space not zeroed) is not purged yet. The mark is written in the
-- same transaction as the change, so a process that dies before its run's
-- purge leaves it behind, and the next run purges those tables too.
CREATE TABLE privacy_residue (
    table_name TEXT PRIMARY KEY,
    since      timestamptz NOT NULL
);
