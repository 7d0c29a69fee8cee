-- +goose Up
-- Sealed bodies are AES-GCM ciphertext: they never compress, and by default
-- PostgreSQL moved every row over about 2 KB (a typical Patient is 2.3 KB
-- sealed) out of line into TOAST, after trying to compress it. Reading a
-- page of 20 Patients then cost 20 TOAST index lookups and their chunk
-- pages on top of the rows; keeping them in the row made the family-name
-- search about 10-15% faster at 100,000 Patients (docs/benchmarks.md).
-- Rows stay in the heap up to the largest target PostgreSQL allows; larger
-- bodies still go out of line, uncompressed. Existing rows keep their
-- storage until they are written again.
ALTER TABLE resource_versions SET (toast_tuple_target = 8160);
ALTER TABLE resource_versions ALTER COLUMN body SET STORAGE EXTERNAL;

-- +goose Down
ALTER TABLE resource_versions ALTER COLUMN body SET STORAGE EXTENDED;
ALTER TABLE resource_versions RESET (toast_tuple_target);
