-- Sending policy (issue 11): registered message templates, and what each
-- API client may send. A client without a policy row may send any text
-- from any fromEmail (the blueprint's behaviour); one with a row may use
-- only the fromEmail addresses and domains in from_allow (one a line;
-- none: only the server's own sender) and, with templates_only, only
-- registered templates.
CREATE TABLE message_templates (
    id         TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (id, locale)
);

CREATE TABLE client_sending_policies (
    client_id      TEXT PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    from_allow     TEXT NOT NULL,
    templates_only INTEGER NOT NULL DEFAULT 0, -- 0 or 1, as in SQLite: one query for both
    updated_at     BIGINT NOT NULL
);
