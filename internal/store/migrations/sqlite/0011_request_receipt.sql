-- The erasure receipt is readable through xtk:queryDef as the attribute
-- @receipt of nms:gdprRequest: the JWS is kept on the request row too.
ALTER TABLE privacy_requests ADD COLUMN receipt TEXT;
