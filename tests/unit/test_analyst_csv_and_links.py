"""The analyst API's CSV cells, content negotiation and next-page links (projections/api.py),
from an analyst API audit."""

from __future__ import annotations

import csv
import io

from starlette.requests import Request

from projections.api import _as_sent, _csv_lines, _wants_csv


def _request(path: bytes, query: bytes = b"", accept: list[bytes] | None = None) -> Request:
    return Request({"type": "http", "method": "GET", "scheme": "http", "server": ("spor.test", 80),
                    "root_path": "", "path": path.decode("utf-8", "replace"), "raw_path": path,
                    "query_string": query, "headers": [(b"accept", a) for a in accept or []]})


def test_a_formula_after_a_separator_is_marked_as_one_at_the_start_is() -> None:
    """Norwegian Excel splits a .csv at ';': an activity id "x;=1+5;" gave a cell =1+5."""
    rows = [{"activity_id": "https://c.example.org/x;=1+5;", "person_id": "P;@SUM(1),+2\t-3", "n": "=1+1",
             "plain": "a;b,c"}]
    text = _csv_lines(rows, [], True).decode("utf-8-sig")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row == {"activity_id": "https://c.example.org/x;'=1+5;", "person_id": "P;'@SUM(1),'+2\t'-3",
                   "n": "'=1+1", "plain": "a;b,c"}
    for separator in ";,\t":
        for cell in text.replace("\r\n", separator).split(separator):
            assert not cell.strip('"').startswith(("=", "+", "-", "@")), cell


def test_the_next_page_keeps_the_path_as_sent() -> None:
    """Built from the decoded path, the next page of person "P%41" was person "PA"'s, of
    "P%2F..%2Fx" person "x"'s (a client resolves dot segments), and a non-Latin-1 id made the CSV
    Link header a 500."""
    for raw in (b"/api/v1/transcripts/P%2541", b"/api/v1/transcripts/P%2F..%2Fx",
                "/api/v1/transcripts/Pé✓".encode(), b'/api/v1/transcripts/q"x>y|z'):
        url = str(_as_sent(_request(raw, b"limit=1")).include_query_params(offset=1))
        assert url.isascii() and '"' not in url and ">" not in url, url
        path = url.split("?")[0].removeprefix("http://spor.test")
        assert path in ("/api/v1/transcripts/P%2541", "/api/v1/transcripts/P%2F..%2Fx",
                        "/api/v1/transcripts/P%C3%A9%E2%9C%93", "/api/v1/transcripts/q%22x%3Ey%7Cz"), url


def test_accept_q_values_decide_between_csv_and_json() -> None:
    """text/csv;q=0 is "not acceptable" (RFC 9110 12.4.2), and JSON rated higher wins; a CSV was
    sent whenever Accept named text/csv."""
    def wants(*accept: bytes) -> bool:
        return _wants_csv(_request(b"/api/v1/compliance", accept=list(accept)))
    assert wants(b"text/csv") and wants(b"application/json;q=0.5, text/csv")
    assert not wants(b"text/csv;q=0") and not wants(b"application/json, text/csv;q=0.1")
    assert not wants() and not wants(b"*/*") and wants(b"application/json;q=0.1", b"text/csv;q=0.2")
