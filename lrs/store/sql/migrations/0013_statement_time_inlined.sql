-- 0013: projections.statement_time (0008) is declared STABLE, which is what it is: its cast to
-- timestamptz reads the session's time zone for a text without an offset. Declared IMMUTABLE,
-- PostgreSQL would not inline its body into the queries that call it (an IMMUTABLE function
-- whose body calls a non-immutable one is run as a separate function call), and the call cost
-- ~4 us per statement of the ~10 us the function takes (measured over 100,000 timestamps).
-- Nothing indexes on it, so the weaker promise costs nothing.

ALTER FUNCTION projections.statement_time(text, timestamptz) STABLE;
