-- Migration 5: a name's search terms gain its runs of three words, so a
-- full name ("Nguyễn Văn An") is answered from its own postings instead of
-- a pair's postings checked against another pair. The terms of existing
-- dossiers are written again by the migration itself (see lib.rs).
SELECT 1;
