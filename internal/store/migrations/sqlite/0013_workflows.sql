-- The technical workflows as xtk:workflow shows them: one row each, with
-- the state of its current or last run. A run is taken by one process at a
-- time with a conditional UPDATE (state not started, or its lease run
-- out), which holds across replicas. The lease is renewed while it runs.
CREATE TABLE workflows (
    id            INTEGER PRIMARY KEY,
    internal_name TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    state         INTEGER NOT NULL DEFAULT 0,
    last_start    TIMESTAMP,
    last_end      TIMESTAMP,
    last_result   TEXT,
    run_by        TEXT,
    lease_until   TIMESTAMP
);
INSERT INTO workflows (id, internal_name, label) VALUES
    (1, 'collectPrivacyRequests', 'Collect privacy requests'),
    (2, 'deletePrivacyRequestsData', 'Delete privacy requests data'),
    (3, 'cleanupPrivacyRequests', 'Privacy request cleanup');
