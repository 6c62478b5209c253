-- How each chunk's plaintext was packed before it was sealed: '' for a
-- file written before compression (the chunk is the plaintext), 'lz4' for
-- LZ4 block compression. The codec is also bound into each chunk's
-- authenticated data, so changing it here makes the file refuse to open.
ALTER TABLE privacy_exports ADD COLUMN codec TEXT NOT NULL DEFAULT '';
