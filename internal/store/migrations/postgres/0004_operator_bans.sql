-- Consecutive lock-outs of an operator since its last successful logon or
-- unlock: each ban doubles the previous one, up to the maximum (ACC's
-- XtkSecurity_Initial_Ban_Duration and XtkSecurity_Max_Ban_Duration).
ALTER TABLE operators ADD COLUMN bans INTEGER NOT NULL DEFAULT 0;
