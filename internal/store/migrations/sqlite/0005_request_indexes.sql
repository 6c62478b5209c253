-- Every CreateRequestByName maintains each index of privacy_requests. Two
-- served no query: claims filter on status first (privacy_requests_status),
-- and namespaces are never deleted, so nothing looks requests up by
-- namespace_id. Dropping them makes a create about 8 % cheaper for
-- PostgreSQL (bench/README.md).
DROP INDEX privacy_requests_claimed_until;
DROP INDEX privacy_requests_namespace_id;
