CREATE TABLE IF NOT EXISTS units (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    division_type TEXT NOT NULL,
    level TEXT NOT NULL,
    parent_code TEXT
);
CREATE INDEX IF NOT EXISTS units_parent ON units(parent_code);

CREATE TABLE IF NOT EXISTS agencies (
    code TEXT PRIMARY KEY,
    name_vi TEXT NOT NULL,
    name_en TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit_code TEXT NOT NULL REFERENCES units(code),
    address TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS agencies_kind_unit ON agencies(kind, unit_code);

CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    full_name TEXT NOT NULL,
    national_id TEXT,
    phone TEXT,
    email TEXT,
    roles TEXT NOT NULL,
    agency_code TEXT REFERENCES agencies(code),
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_national_id ON users(national_id) WHERE national_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_id);

CREATE TABLE IF NOT EXISTS procedures (
    code TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    imported_at INTEGER NOT NULL,
    PRIMARY KEY (code, version)
);

CREATE TABLE IF NOT EXISTS dossier_seq (
    agency_code TEXT NOT NULL,
    day TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (agency_code, day)
);

CREATE TABLE IF NOT EXISTS dossiers (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
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
CREATE INDEX IF NOT EXISTS dossiers_queue ON dossiers(agency_code, holder, due_at);
CREATE INDEX IF NOT EXISTS dossiers_applicant ON dossiers(applicant_user_id, submitted_at);
CREATE INDEX IF NOT EXISTS dossiers_national_id ON dossiers(applicant_national_id);
CREATE INDEX IF NOT EXISTS dossiers_status ON dossiers(status);

CREATE TABLE IF NOT EXISTS dossier_documents (
    dossier_id INTEGER NOT NULL REFERENCES dossiers(id),
    position INTEGER NOT NULL,
    document_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    stage TEXT NOT NULL,
    PRIMARY KEY (dossier_id, position)
);
CREATE INDEX IF NOT EXISTS dossier_documents_sha ON dossier_documents(sha256);

CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    agency_code TEXT,
    action TEXT NOT NULL,
    dossier_code TEXT,
    from_status TEXT,
    to_status TEXT,
    note TEXT,
    payload_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_dossier ON audit(dossier_code, seq);

CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    claimed_until INTEGER,
    done_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(done_at, id);

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
