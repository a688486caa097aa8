-- The helpdesk tables this example serves. Timestamps are UTC RFC 3339 strings ("...Z").
CREATE TABLE IF NOT EXISTS tickets (
    id              INTEGER PRIMARY KEY,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('new', 'open', 'pending', 'on_hold', 'solved')),
    priority        TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    requester_name  TEXT NOT NULL,
    requester_email TEXT NOT NULL,
    requester_org   TEXT,
    assignee        TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sla_due_at      TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id),
    author_role TEXT NOT NULL CHECK (author_role IN ('customer', 'agent', 'system')),
    author_name TEXT NOT NULL,
    sent_at     TEXT NOT NULL,
    public      INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drafts (
    ticket_id  INTEGER PRIMARY KEY REFERENCES tickets(id),
    draft_id   TEXT NOT NULL UNIQUE,
    body       TEXT NOT NULL,
    language   TEXT,
    author     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS priority_changes (
    id                 INTEGER PRIMARY KEY,
    ticket_id          INTEGER NOT NULL REFERENCES tickets(id),
    previous_priority  TEXT NOT NULL,
    requested_priority TEXT NOT NULL,
    reason             TEXT NOT NULL,
    requested_by       TEXT NOT NULL,
    requested_at       TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('pending_approval', 'applied', 'rejected', 'expired')),
    approved_by        TEXT
);
