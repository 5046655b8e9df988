-- 0002: documents (State, Activity Profile, Agent Profile) and the canonical Activity projection.
--
-- Documents follow the same rule as statements: every write is an event in `events`
-- ('document.put', 'document.merge', 'document.delete'), appended under the store's append
-- lock; `documents` is an inline projection of those events written in the same transaction.
-- Document bytes are content-addressed in `document_contents` so events stay small and a
-- rebuild from the log reproduces every document and its ETag. See docs/architecture.md,
-- "Documents".

-- Immutable document bytes of a store, addressed by SHA-256 (deduplicated, never updated).
CREATE TABLE document_contents (
    store_id  bigint NOT NULL REFERENCES stores (id),
    sha256    bytea NOT NULL,
    content   bytea NOT NULL,
    PRIMARY KEY (store_id, sha256)
);

-- The current document of every (resource, activity, agent, registration, id): the fold of
-- the document events. '' stands for "not part of this resource's key" (an Activity Profile
-- has no agent, an Agent Profile no activity, a State may have no registration), so the key
-- can be a primary key without nullable columns.
CREATE TABLE documents (
    store_id      bigint NOT NULL REFERENCES stores (id),
    resource      text NOT NULL CHECK (resource IN ('state', 'activity_profile', 'agent_profile')),
    activity_id   text NOT NULL,
    agent_key     text NOT NULL,
    registration  text NOT NULL,
    doc_id        text NOT NULL,
    content_type  text NOT NULL,
    sha256        bytea NOT NULL,
    -- the quoted-less ETag: hex SHA-1 of the content (xAPI 1.0.3 Communication 3.1.s4.b2)
    etag          text NOT NULL,
    updated       timestamptz NOT NULL,
    -- the event that produced this version
    position      bigint NOT NULL,
    PRIMARY KEY (store_id, resource, activity_id, agent_key, registration, doc_id)
);

-- Canonical Activity definitions (xAPI Communication 2.5): an inline projection of the
-- statement log, updated in the statement append's transaction. Language maps are merged,
-- other definition properties come from the latest statement that carried them.
CREATE TABLE activities (
    store_id     bigint NOT NULL REFERENCES stores (id),
    activity_id  text NOT NULL,
    definition   jsonb NOT NULL,
    PRIMARY KEY (store_id, activity_id)
);

-- Names seen for each agent in statements (xAPI Communication 2.4, Person object).
CREATE TABLE agent_names (
    store_id   bigint NOT NULL REFERENCES stores (id),
    agent_key  text NOT NULL,
    name       text NOT NULL,
    PRIMARY KEY (store_id, agent_key, name)
);
