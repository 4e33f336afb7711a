-- Migration 5.
--
-- (1) A name's search terms gain its runs of three words, so a full name
-- ("Nguyễn Văn An") is answered from its own postings instead of a pair's
-- postings checked against another pair. The terms of existing dossiers
-- are written again by the migration itself (see lib.rs).
--
-- (2) The dossier code's uniqueness moves from the table definition to a
-- named unique index, which a bulk load can drop and build again in one
-- sort (an inline UNIQUE is an index SQLite never lets go of: every row
-- of a load inserted into it at a random place). SQLite cannot alter a
-- constraint, so the table is rebuilt, as its documentation prescribes:
-- the runner turns foreign keys off for this migration and runs
-- `PRAGMA foreign_key_check` before it commits.
CREATE TABLE dossiers_v5 (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    procedure_code TEXT NOT NULL,
    procedure_version INTEGER NOT NULL,
    agency_code TEXT NOT NULL REFERENCES agencies(code),
    unit_code TEXT NOT NULL,
    channel TEXT NOT NULL,
    applicant_user_id INTEGER REFERENCES users(id),
    applicant_name TEXT NOT NULL,
    applicant_national_id TEXT NOT NULL,
    applicant_phone TEXT,
    applicant_email TEXT,
    fields TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    holder TEXT,
    due_at INTEGER,
    appointment_at INTEGER,
    lifecycle TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    FOREIGN KEY (procedure_code, procedure_version) REFERENCES procedures(code, version)
);
INSERT INTO dossiers_v5 (id, code, procedure_code, procedure_version, agency_code, unit_code, channel, applicant_user_id, applicant_name, applicant_national_id, applicant_phone, applicant_email, fields, submitted_at, status, holder, due_at, appointment_at, lifecycle, version, updated_at)
    SELECT id, code, procedure_code, procedure_version, agency_code, unit_code, channel, applicant_user_id, applicant_name, applicant_national_id, applicant_phone, applicant_email, fields, submitted_at, status, holder, due_at, appointment_at, lifecycle, version, updated_at FROM dossiers;
DROP TABLE dossiers;
ALTER TABLE dossiers_v5 RENAME TO dossiers;
CREATE UNIQUE INDEX dossiers_code ON dossiers(code);
CREATE INDEX dossiers_queue ON dossiers(agency_code, holder, due_at, id, status);
CREATE INDEX dossiers_applicant ON dossiers(applicant_user_id, submitted_at);
CREATE INDEX dossiers_national_id ON dossiers(applicant_national_id);
CREATE INDEX dossiers_status ON dossiers(status);
CREATE INDEX dossiers_running_due ON dossiers(due_at) WHERE status IN ('accepted', 'processing');
