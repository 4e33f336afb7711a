-- Migration 6: what an outside security review asked for (docs/security.md).
--
-- (1) A national ID number typed at registration proves nothing: it grants
-- access to counter dossiers only once an officer who saw the identity
-- card (or a trusted identity provider) has verified it. Only verified
-- numbers are unique; anyone may type any number.
ALTER TABLE users ADD COLUMN national_id_verified_at INTEGER;
ALTER TABLE users ADD COLUMN national_id_verified_by TEXT;
ALTER TABLE users ADD COLUMN national_id_verification TEXT;
DROP INDEX IF EXISTS users_national_id;
CREATE INDEX users_national_id ON users(national_id);
CREATE UNIQUE INDEX users_verified_national_id ON users(national_id) WHERE national_id_verified_at IS NOT NULL;

-- Counter and postal dossiers linked to an account by an unverified
-- number before this release: unlinked, and listed for staff to review.
CREATE TABLE IF NOT EXISTS link_reviews (
    id INTEGER PRIMARY KEY,
    dossier_id INTEGER NOT NULL UNIQUE REFERENCES dossiers(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolved_by TEXT,
    resolution TEXT CHECK (resolution IN ('kept', 'removed'))
);
INSERT INTO link_reviews (dossier_id, user_id, created_at)
    SELECT id, applicant_user_id, CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM dossiers WHERE channel <> 'online' AND applicant_user_id IS NOT NULL;
UPDATE dossiers SET applicant_user_id = NULL
    WHERE channel <> 'online' AND applicant_user_id IS NOT NULL;

-- (2) The secret printed on the receipt (Form 01): with the code, it shows
-- the dossier to whoever holds the paper. And the sequence number of the
-- audit record that set the dossier's current status, which `motcua audit
-- verify` checks against the chain.
ALTER TABLE dossiers ADD COLUMN access_code TEXT;
ALTER TABLE dossiers ADD COLUMN audit_seq INTEGER;
UPDATE dossiers SET access_code = substr('0000000000' || abs(random() % 10000000000), -10, 10);
UPDATE dossiers SET audit_seq = (SELECT MAX(a.seq) FROM audit a WHERE a.dossier_code = dossiers.code AND a.to_status IS NOT NULL);

-- (3) The signed head of the audit chain, written with every append.
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at INTEGER NOT NULL,
    signer TEXT NOT NULL,
    signature TEXT NOT NULL
);

-- (4) Failed sign-ins and registrations counted per key (an account and
-- address, an address, an account), so that limits hold across restarts
-- and nodes.
CREATE TABLE IF NOT EXISTS throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS throttle_last ON throttle(last_at);

-- (5) The national catalogue is shared; whether a procedure can be filed
-- is decided per province (and per commune where the province decides).
-- Procedures a province imports belong to it (home_province).
ALTER TABLE procedures ADD COLUMN home_province TEXT;
CREATE TABLE IF NOT EXISTS procedure_availability (
    unit_code TEXT NOT NULL REFERENCES units(code),
    procedure_code TEXT NOT NULL,
    available INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (unit_code, procedure_code)
);
