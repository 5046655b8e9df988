-- 0035: a statement's time in the read models is never after the LRS stored it.
--
-- A completion dated in the future (a client's clock, a made-up date, or a test's 9999-12-31)
-- counted as fresh until long after it could have happened, and it raised status_meta's
-- max_completed (0010) past every date the compliance answers are asked for, which switched
-- their fast path off for the whole store until that date: a roll-up of 5,000 people went from
-- ~10 ms to ~650 ms (a cmi5 audit). Voiding such a completion does not lower max_completed.
-- The experience a statement records happened before the statement arrived, so the read
-- models now take its timestamp, or its stored time when that is earlier (xAPI Data 2.4.7
-- lets the two differ; the statement itself keeps what was sent).
--
-- 0020's statement_time keeps its body under a new name, statement_time_as_sent (Python:
-- projections.facts.parse_timestamp), and statement_time is now that, at most the stored time
-- (Python: projections.facts.statement_time). statement_facts (0026) calls statement_time by
-- name, which a SQL function's body resolves when it runs, so it is not restated.
--
-- **Upgrading past 0035**: facts folded before it keep the time they had; a store that holds
-- completions dated after their stored time needs `spor projections rebuild all` once
-- (docs/projections.md), which also makes compliance's max_completed true again.

ALTER FUNCTION projections.statement_time(text, timestamptz) RENAME TO statement_time_as_sent;

CREATE FUNCTION projections.statement_time(ts text, stored timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT least(projections.statement_time_as_sent(ts, stored), stored)
$$;
