-- Migration 3: reads that stay fast at millions of dossiers.
--
-- Staff search by name: the folded words and pairs of adjacent words of
-- each applicant's name, per agency (see motcua_store::query). Written in
-- the same transaction as the dossier; existing dossiers are indexed by
-- the migration itself.
CREATE TABLE dossier_terms (
    agency_code TEXT COLLATE "C" NOT NULL,
    term TEXT COLLATE "C" NOT NULL,
    dossier_id BIGINT NOT NULL REFERENCES dossiers(id),
    PRIMARY KEY (agency_code, term, dossier_id)
);

-- The workqueue (most urgent first, then by arrival) and its counts read
-- the index alone.
DROP INDEX IF EXISTS dossiers_queue;
CREATE INDEX dossiers_queue ON dossiers(agency_code, holder, due_at, id, status);
