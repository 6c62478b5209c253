-- Options of this instance, as ACC keeps them in xtk:option: one value per
-- name, written once and read by every replica. XtkDatabaseId (the
-- databaseId of serverInfo and GetOption) is created here on first start.
CREATE TABLE instance_options (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
