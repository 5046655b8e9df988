-- 0001: stores, credentials, the append-only event log and the statement index.
--
-- Everything is keyed by store_id first, so the schema can later be distributed by store
-- (Citus: distribution column store_id) without changing a query.

CREATE TABLE stores (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    organisation   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The per-store position counter. Appends hold the store's advisory lock
    -- (pg_advisory_xact_lock(1397772114, id)) to the end of their transaction, so positions
    -- are assigned and become visible in commit order: a reader that has seen position N
    -- never later finds a committed event below N.
    last_position  bigint NOT NULL DEFAULT 0,
    -- stored time of the newest committed statement: what X-Experience-API-Consistent-Through
    -- reports, since everything stored up to it is visible.
    last_stored    timestamptz
);

CREATE TABLE credentials (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id     bigint NOT NULL REFERENCES stores (id),
    key          text NOT NULL UNIQUE,
    secret_hash  text NOT NULL,
    label        text NOT NULL DEFAULT '',
    scopes       text[] NOT NULL DEFAULT ARRAY['all'],
    authority    jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX credentials_store ON credentials (store_id);

-- The log: the single source of truth. One row per accepted statement (kind 'statement'),
-- and later other domain facts with kinds of their own. Never updated or deleted.
CREATE TABLE events (
    store_id      bigint NOT NULL REFERENCES stores (id),
    position      bigint NOT NULL,
    kind          text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    statement_id  uuid,
    -- json, not jsonb: kept as the received text (no conversion when appended or read back);
    -- read models that query into it use the json operators
    payload       json NOT NULL,
    PRIMARY KEY (store_id, position)
);

CREATE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();

-- Attachment contents, addressed by their SHA-2 within a store (immutable, deduplicated).
CREATE TABLE attachments (
    store_id      bigint NOT NULL REFERENCES stores (id),
    sha2          text NOT NULL,
    content_type  text NOT NULL,
    content       bytea NOT NULL,
    PRIMARY KEY (store_id, sha2)
);

-- The statement index: an inline projection of the log, written in the append's transaction,
-- which is what GET /statements reads.
CREATE TABLE statements (
    store_id      bigint NOT NULL REFERENCES stores (id),
    statement_id  uuid NOT NULL,
    position      bigint NOT NULL,
    stored        timestamptz NOT NULL,
    voided        boolean NOT NULL DEFAULT false,
    -- the statement this one voids, when its verb is http://adlnet.gov/expapi/verbs/voided
    voids         uuid,
    -- the statement this one targets by StatementRef (voiding or not)
    refers_to     uuid,
    authority_key text NOT NULL,
    attachment_sha2s text[] NOT NULL DEFAULT '{}',
    -- this statement's own filter terms {term: direct}, so a statement that later targets it
    -- by StatementRef can inherit them without a second index
    terms         jsonb NOT NULL,
    PRIMARY KEY (store_id, statement_id),
    UNIQUE (store_id, position)
);
CREATE INDEX statements_refers_to ON statements (store_id, refers_to) WHERE refers_to IS NOT NULL;

-- Filter terms of each statement: agent ('a:'), verb ('v:'), activity ('o:'), registration
-- ('r:'). direct = true where the plain filter matches (actor/object for agents, object for
-- activities); related_agents / related_activities widen to all rows. A statement that targets
-- another by StatementRef also carries the target's terms (xAPI 1.0.3 §7.2.3, "Filter
-- Conditions for StatementRefs").
CREATE TABLE statement_terms (
    store_id  bigint NOT NULL,
    term      text NOT NULL,
    position  bigint NOT NULL,
    direct    boolean NOT NULL,
    PRIMARY KEY (store_id, term, position)
);
