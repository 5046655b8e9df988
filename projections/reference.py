"""Reference data as events: the organisation tree, people (identifier links, employments) and
training requirements, imported from CSV or JSON files (formats in docs/import-formats.md).

An import is all or nothing: every row is checked first and a bad one raises ``ImportFailed``
naming the file, the line and the field; nothing is appended. Rows become events of their own
kinds appended with ``lrs.store.log.reserve`` (the store's append lock), and only rows that
differ from the newest event with the same key are appended, so re-importing a file changes
nothing. ``projections.reference_keys`` is the inline index of those keys (written in the same
transaction).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import orjson

import statements_schema
from lrs.ops.terms import agent_key
from lrs.store.log import Reservation, commit_positions, reserve
from lrs.store.queries import sql
from projections import org_tree
from projections.facts import (
    EMPLOYMENT,
    MAX_VALIDITY_DAYS,
    ORG_UNIT,
    PERSON_LINKED,
    PERSON_UNLINKED,
    REQUIREMENT,
)

KINDS = ("org", "people", "requirements")
# The fields of each kind's records (CSV columns, JSON members): any other is refused, not left
# out (an audit: a "Valid_To" column was dropped without a word, and a leaver stayed employed).
_EMPLOYMENT_FIELDS = ("employment_id", "unit_id", "role", "profession", "valid_from", "valid_to")
FIELDS = {
    "org": ("unit_id", "id_kind", "name", "parent_id", "level", "valid_from", "closed"),
    "people": ("person_id", "identifiers", "unlink", *_EMPLOYMENT_FIELDS, "employments"),
    "requirements": ("requirement_id", "name", "activity_ids", "units", "roles", "professions", "validity_days"),
}
_REQUIRED_COLUMNS = {"org": ("unit_id", "name", "level", "valid_from"), "people": ("person_id",),
                     "requirements": ("requirement_id", "activity_ids")}
_LEVEL = re.compile(r"^[^\W\d_]\w*$")  # a lower-case word, æ, ø and å too (område)
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DIGITS = re.compile(r"^[0-9]+$")
# The longest value a field may hold: an identifier (unit, person, employment, requirement,
# role, profession) goes into the read models' keys and indexes, which hold ~2,700 bytes an
# entry (a longer one was accepted here and then stopped the projections); a name is text; an
# activity IRI is compared, not indexed.
ID_MAX, TEXT_MAX, IRI_MAX = 200, 500, 2000
# Control characters (NUL among them, which PostgreSQL's text cannot hold; U+001F separates the
# parts of a key) and lone surrogates (not Unicode text) in a value.
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# identifier families: link and unlink of one identifier share a key, so the newest of either wins
_FAMILY = {ORG_UNIT: "org.unit", PERSON_LINKED: "person.link", PERSON_UNLINKED: "person.link",
           EMPLOYMENT: "person.employment", REQUIREMENT: "requirement"}


class Line(int):
    """Where a record begins: its line, and for a JSON item that shares its line with another
    (a file on one line, as many exports are) also its number in the array, from 1: "line 1"
    alone did not say which of 80,000 people was wrong."""

    item: int | None = None

    def __new__(cls, line: int, item: int | None = None) -> Line:
        where = super().__new__(cls, line)
        where.item = item
        return where

    def __str__(self) -> str:
        return f"{int(self)} (item {self.item})" if self.item is not None else str(int(self))


@dataclass(frozen=True)
class RowError:
    """One problem in an import file."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ImportFailed(ValueError):
    """An import file has bad rows; nothing of it was applied."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class RefEvent:
    """A reference-data event to append: its kind, its key and its payload."""

    kind: str
    key: str
    payload: dict[str, Any]

    @property
    def family(self) -> str:
        return _FAMILY[self.kind]

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(orjson.dumps([self.kind, self.payload], option=orjson.OPT_SORT_KEYS)).digest()


# --- reading files ----------------------------------------------------------------------------

def read_records(path: Path, kind: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) of a CSV file (header row, then one record per row) or a JSON array. A CSV
    header's names are read without case or surrounding spaces; with ``kind``, a header naming a
    column the kind does not have, or lacking one it needs, is refused at line 1, once (a file
    of another separator or kind failed every row with "is required")."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFailed([RowError(path.name, line, "(file)", f"is not UTF-8 text ({exc.reason} at byte "
                                                                 f"{exc.start})")]) from None
    if path.suffix.lower() == ".json":
        items = list(_json_records(text, path.name))
        starts = Counter(line for line, _ in items)
        for n, (line, rec) in enumerate(items, 1):
            where = Line(line, n) if starts[line] > 1 else line
            if kind is not None:
                _check_members(path.name, kind, where, rec)
            yield where, rec
        return
    # strict: a quote left open is an error, not the rest of the file read into one cell
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1  # the line the record being read begins on (a quoted cell may span lines)
    try:
        raw = next(reader, [])
        header = [h.strip().lower() for h in raw]
        twice = sorted({h for h in header if h and header.count(h) > 1})
        if twice:  # (a DictReader keeps the last of them, silently)
            raise ImportFailed([RowError(path.name, 1, "(header)", f"column {', '.join(twice)} appears twice")])
        if kind is not None:
            _check_header(path.name, kind, header, raw)
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(v.strip() for v in row):
                continue
            if len(row) > len(header) and any(v.strip() for v in row[len(header):]):
                raise ImportFailed([RowError(path.name, line, "(row)", f"has {len(row)} cells; the header names "
                                                                      f"{len(header)} columns")])
            yield line, {k: v.strip() for k, v in zip(header, row, strict=False) if k}
    except csv.Error as exc:
        raise ImportFailed([RowError(path.name, start, "(csv)", str(exc))]) from None


def _check_header(file: str, kind: str, header: list[str], raw: list[str]) -> None:
    known = FIELDS[kind]
    unknown = [h for h in header if h and h not in known]
    missing = [c for c in _REQUIRED_COLUMNS[kind] if c not in header]
    if not unknown and not missing:
        return
    hint = ""
    if len(raw) == 1 and ";" in raw[0]:
        hint = " (the header is separated by ';': save the file with ',' between columns, as CSV UTF-8)"
    what = "; ".join(part for part in (
        f"no column {', '.join(missing)}" if missing else "",
        f"unknown column {', '.join(repr(h) for h in unknown)}" if unknown else "") if part)
    raise ImportFailed([RowError(file, 1, "(header)", f"{what}; a {kind} file has the columns "
                                                      f"{', '.join(known)}{hint}")])


def _json_records(text: str, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # Decoded item by item so each record's line number can be reported.
    dec = json.JSONDecoder()
    i = _skip(text, 0)
    if i >= len(text) or text[i] != "[":
        raise ImportFailed([RowError(name, 1, "(file)", "a JSON import file is an array of objects")])
    i = _skip(text, i + 1)
    item, last = 0, 0  # the item being read, and the line the one before it began on

    def at(line: int) -> int:
        # a line another item began on names the item being read (a file on one line)
        return Line(line, item) if line == last else line

    while i >= len(text) or text[i] != "]":
        line = text.count("\n", 0, i) + 1
        if item:
            if i >= len(text) or text[i] != ",":
                what = "the array is not closed" if i >= len(text) else "expected ',' or ']' after an item"
                raise ImportFailed([RowError(name, line, "(json)", what)])
            i = _skip(text, i + 1)
            line = text.count("\n", 0, i) + 1
        item += 1
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise ImportFailed([RowError(name, at(exc.lineno), "(json)", f"{exc.msg} (column {exc.colno})")]) from None
        except RecursionError:
            raise ImportFailed([RowError(name, at(line), "(json)", "nested too deeply")]) from None
        except ValueError as exc:  # e.g. an integer beyond Python's digit limit
            raise ImportFailed([RowError(name, at(line), "(json)", str(exc)[:200])]) from None
        if not isinstance(obj, dict):
            raise ImportFailed([RowError(name, at(line), "(record)", "each item must be an object")])
        yield line, obj
        last = line
        i = _skip(text, i)
    if _skip(text, i + 1) < len(text):
        raise ImportFailed([RowError(name, text.count("\n", 0, i) + 1, "(json)", "text after the array")])


def _check_members(file: str, kind: str, line: int, rec: dict[str, Any]) -> None:
    known = FIELDS[kind]
    where = f"the record of {rec[known[0]]!r}" if isinstance(rec.get(known[0]), str | int) else "a record"
    unknown = [k for k in rec if k not in known]
    jobs = rec.get("employments") if kind == "people" else None
    for job in jobs if isinstance(jobs, list) else ():
        if isinstance(job, dict):
            unknown += [f"employments[].{k}" for k in job if k not in _EMPLOYMENT_FIELDS]
    if unknown:
        raise ImportFailed([RowError(file, line, "(record)", f"{where} has unknown member(s) "
                                                            f"{', '.join(repr(k) for k in unknown)}; a {kind} "
                                                            f"record has {', '.join(known)}")])


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


# --- row rules --------------------------------------------------------------------------------

class _Row:
    def __init__(self, file: str, line: int, rec: dict[str, Any], errors: list[RowError]) -> None:
        self.file, self.line, self.rec, self.errors = file, line, rec, errors

    def err(self, field: str, message: str) -> None:
        self.errors.append(RowError(self.file, self.line, field, message))

    def text(self, field: str, required: bool = True, limit: int = ID_MAX) -> str | None:
        v = self.rec.get(field)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                self.err(field, "is required")
            return None
        if not isinstance(v, str | int) or isinstance(v, bool):
            self.err(field, "must be text")
            return None
        return self.checked(field, str(v).strip(), limit)

    def checked(self, field: str, value: str, limit: int) -> str | None:
        """``value`` if it is text a field may hold: at most ``limit`` characters, no control
        characters, no lone surrogates."""
        if len(value) > limit:
            self.err(field, f"is {len(value)} characters long; at most {limit}")
            return None
        if _NOT_TEXT.search(value):
            self.err(field, "must not hold control characters (NUL, line breaks, U+001F) or lone surrogates")
            return None
        return value

    def day(self, field: str, required: bool = True) -> str | None:
        v = self.text(field, required)
        if v is None:
            return None
        try:
            if not _DAY.match(v):  # (fromisoformat also reads 20261231 and week dates: 2026-W01-1)
                raise ValueError
            return date.fromisoformat(v).isoformat()
        except ValueError:
            self.err(field, f"{v!r} is not a date (YYYY-MM-DD)")
            return None

    def strings(self, field: str, limit: int = ID_MAX) -> list[str]:
        v = self.rec.get(field)
        if v is None or v == "":
            return []
        if isinstance(v, str):
            items = [s for s in re.split(r"[\s;]+", v.strip()) if s]
        elif isinstance(v, list) and all(isinstance(s, str) for s in v):
            items = [s.strip() for s in v if s.strip()]
        else:
            self.err(field, "must be a list of text (in CSV: separated by spaces or ';')")
            return []
        kept = [self.checked(f"{field}[{i}]", s, limit) for i, s in enumerate(items)]
        return [s for s in kept if s is not None]


def identifier_key(value: Any) -> str | None:
    """The IFI key of an identifier: an xAPI Agent object, ``mailto:...``, ``account:HOMEPAGE|NAME``
    or ``openid:URL``; None when it is none of these."""
    if isinstance(value, dict):
        try:  # an Agent as xAPI has it: exactly one identifier, each of its form
            statements_schema.validate_agent(value, "1.0.3")
        except statements_schema.ValidationFailure:
            return None
        return agent_key(value)
    if not isinstance(value, str):
        return None
    v = value.strip()
    if v.startswith("mailto:") and "@" in v:
        return agent_key({"mbox": v})
    if v.startswith("account:"):
        home, sep, name = v[len("account:"):].partition("|")
        if sep and home.startswith(("http://", "https://")) and name:
            return agent_key({"account": {"homePage": home, "name": name}})
    if v.startswith("openid:") and len(v) > len("openid:"):
        return v
    return None


def org_events(file: str, records: Sequence[tuple[int, dict[str, Any]]],
               errors: list[RowError]) -> list[tuple[int, RefEvent]]:
    """``org.unit`` events of an organisation file."""
    out: list[tuple[int, RefEvent]] = []
    for line, rec in records:
        r = _Row(file, line, rec, errors)
        unit_id = r.text("unit_id")
        id_kind = (r.text("id_kind", required=False) or "resh").lower()
        if id_kind not in ("resh", "orgnr"):
            r.err("id_kind", "must be resh or orgnr")
        if unit_id is not None:
            if not _DIGITS.match(unit_id):
                r.err("unit_id", "must be digits (a RESH id or an organisation number)")
            elif id_kind == "orgnr" and len(unit_id) != 9:
                r.err("unit_id", "an organisation number has 9 digits")
        name = r.text("name", limit=TEXT_MAX)
        parent = r.text("parent_id", required=False)
        if parent is not None and not _DIGITS.match(parent):
            r.err("parent_id", "must be digits (the parent's RESH id or organisation number)")
        level = (r.text("level") or "").lower()
        if level and not _LEVEL.match(level):
            r.err("level", "must be a word such as region, trust, division, department, section, område")
        valid_from = r.day("valid_from")
        closed_given = rec.get("closed")
        if closed_given is None or isinstance(closed_given, bool | str) or closed_given in (0, 1):
            closed_raw = str(closed_given if closed_given is not None else "").strip().lower()
        else:
            closed_raw = "?"  # (an object or a list read as false: a review)
        if closed_raw not in ("", "true", "false", "yes", "no", "1", "0"):
            r.err("closed", "must be true or false")
        if unit_id and name and level and valid_from:
            payload = {"unit_id": unit_id, "id_kind": id_kind, "name": name, "parent_id": parent, "level": level,
                       "valid_from": valid_from, "closed": closed_raw in ("true", "yes", "1")}
            out.append((line, RefEvent(ORG_UNIT, f"{unit_id}@{valid_from}", payload)))
    return out


def people_events(file: str, records: Sequence[tuple[int, dict[str, Any]]],
                  errors: list[RowError]) -> list[tuple[int, RefEvent]]:
    """``person.linked``, ``person.unlinked`` and ``person.employment`` events of a people file.

    CSV: one row per employment (identifiers may repeat on each row or appear on one). JSON: one
    object per person with ``identifiers``, ``unlink`` and ``employments`` lists. An identifier
    in ``unlink`` belongs to no one from then on (a link made by mistake, an address given to
    someone else): it counts as a person of its own again, until a later link.
    """
    out: list[tuple[int, RefEvent]] = []
    for line, rec in records:
        r = _Row(file, line, rec, errors)
        person = r.text("person_id")
        for field, kind in (("identifiers", PERSON_LINKED), ("unlink", PERSON_UNLINKED)):
            given = rec.get(field)
            for i, ident in enumerate(given if isinstance(given, list) else r.strings(field, TEXT_MAX)):
                key = identifier_key(ident)
                if key is not None and r.checked(f"{field}[{i}]", key, TEXT_MAX) is None:
                    continue
                if key is None:
                    r.err(f"{field}[{i}]", "must be an xAPI agent, mailto:ADDRESS, account:HOMEPAGE|NAME or openid:URL")
                elif person:
                    # an unlink names the person the file takes it from (kept with the event)
                    out.append((line, RefEvent(kind, key, {"ifi": key, "person_id": person})))
        if isinstance(rec.get("employments"), list):
            jobs = [(f"employments[{i}].", e) for i, e in enumerate(rec["employments"])]
        elif rec.get("employments") is not None:
            # an object or a text where the list belongs: refused, not read as no employment (the
            # person would drop out of compliance without a word)
            r.err("employments", "must be a list of employment objects")
            jobs = []
        elif any(rec.get(k) for k in ("employment_id", "unit_id")):
            jobs = [("", rec)]
        else:
            jobs = []
        for prefix, job in jobs:
            if not isinstance(job, dict):
                r.err(prefix.rstrip("."), "must be an object")
                continue
            jr = _Row(file, line, {prefix + k: v for k, v in job.items()}, errors)
            emp = jr.text(prefix + "employment_id")
            unit = jr.text(prefix + "unit_id")
            if unit is not None and not _DIGITS.match(unit):
                # a unit's name or Excel's 9.74589E+08 put people outside every trust (an audit)
                jr.err(prefix + "unit_id", f"{unit!r} is not a unit id (the digits of a RESH id or an organisation "
                                           "number, as in the org file)")
                unit = None
            role = jr.text(prefix + "role", required=False) or ""
            prof = jr.text(prefix + "profession", required=False) or ""
            start = jr.day(prefix + "valid_from")
            end = jr.day(prefix + "valid_to", required=False)
            if start and end and end <= start:
                jr.err(prefix + "valid_to", "must be after valid_from")
            if person and emp and unit and start:
                payload = {"person_id": person, "employment_id": emp, "unit_id": unit, "role": role,
                           "profession": prof, "valid_from": start, "valid_to": end}
                out.append((line, RefEvent(EMPLOYMENT, f"{person}\x1f{emp}", payload)))
    return out


def requirement_events(file: str, records: Sequence[tuple[int, dict[str, Any]]],
                       errors: list[RowError]) -> list[tuple[int, RefEvent]]:
    """``requirement.set`` events of a requirements file."""
    out: list[tuple[int, RefEvent]] = []
    for line, rec in records:
        r = _Row(file, line, rec, errors)
        rid = r.text("requirement_id")
        name = r.text("name", required=False, limit=TEXT_MAX) or rid
        acts = r.strings("activity_ids", IRI_MAX)
        if not acts:
            r.err("activity_ids", "is required (the activity ids that satisfy the requirement)")
        for a in acts:
            if not a.startswith(("http://", "https://", "urn:")) or a in ("http://", "https://", "urn:"):
                r.err("activity_ids", f"{a!r} is not an IRI")
        days_raw = rec.get("validity_days")
        days: int | None = None
        if days_raw not in (None, ""):
            try:
                if isinstance(days_raw, bool) or not _DIGITS.match(str(days_raw).strip()):
                    raise ValueError  # (int() also takes "+30", "3_65" and digits of other scripts)
                days = int(str(days_raw))
                if not 0 < days <= MAX_VALIDITY_DAYS:
                    raise ValueError
            except ValueError:
                r.err("validity_days", f"must be a whole number of days from 1 to {MAX_VALIDITY_DAYS}, "
                                       "or empty for no expiry")
        units = r.strings("units")
        for unit in units:
            if not _DIGITS.match(unit):
                # "Medisinsk klinikk" became two ids that match no unit: a requirement for no one
                r.err("units", f"{unit!r} is not a unit id (digits; units are separated by spaces or ';')")
        if rid and acts:
            payload = {"requirement_id": rid, "name": name, "activity_ids": acts, "units": units,
                       "roles": r.strings("roles"), "professions": r.strings("professions"),
                       "validity_days": days}
            out.append((line, RefEvent(REQUIREMENT, rid, payload)))
    return out


_READERS = {"org": org_events, "people": people_events, "requirements": requirement_events}


@dataclass(frozen=True)
class ParsedFile:
    """An import file checked: how many records (rows, or objects of a JSON array) it holds, and
    its events (a record may give several, or none beyond another record's)."""

    records: int
    events: list[RefEvent]
    # (family, key) -> the line its event came from, for errors found later (check_against_store)
    lines: dict[tuple[str, str], int] = dc_field(default_factory=dict)


def parse_file(kind: str, path: Path) -> ParsedFile:
    """Every event of an import file, or ImportFailed with every bad row (file, line, field)."""
    if kind not in _READERS:
        raise ValueError(f"unknown import kind {kind!r}; one of {', '.join(KINDS)}")
    errors: list[RowError] = []
    records = list(read_records(path, kind))
    if not records:
        raise ImportFailed([RowError(path.name, 1, "(file)", f"holds no {kind} records")])
    events = _READERS[kind](path.name, records, errors)
    seen: dict[tuple[str, str], tuple[int, RefEvent]] = {}
    for line, ev in events:
        prev = seen.get((ev.family, ev.key))
        if prev is not None and prev[1].digest != ev.digest:  # kind and payload
            if {prev[1].kind, ev.kind} == {PERSON_LINKED, PERSON_UNLINKED}:
                same = prev[0] == line and getattr(prev[0], "item", None) == getattr(line, "item", None)
                where = "this row" if same else f"line {prev[0]}"
                problem = (f"{ev.key!r} is both linked and unlinked (also on {where}); a file either links an "
                           "identifier or unlinks it")
            else:
                problem = f"{ev.kind} {ev.key!r} differs from line {prev[0]} (one row per key)"
            errors.append(RowError(path.name, line, "(row)", problem))
        seen[(ev.family, ev.key)] = (line, ev)
    if kind == "org" and not errors:
        # what the file alone shows; parents and cycles are judged with the store's units
        # (check_against_store, under the store's lock)
        errors += [RowError(path.name, line, "parent_id", why)
                   for line, why in org_tree.problems(_versions(seen.values()), None)]
    if errors:
        raise ImportFailed(errors)
    return ParsedFile(len(records), [ev for _, ev in seen.values()], {k: line for k, (line, _) in seen.items()})


def _versions(lined: Iterable[tuple[int | None, RefEvent]]) -> list[org_tree.Version]:
    return [org_tree.Version(str(ev.payload["unit_id"]), str(ev.payload["valid_from"]),
                             ev.payload.get("parent_id") or None, line)
            for line, ev in lined if ev.kind == ORG_UNIT]


def store_check(store_id: int, kind: str, parsed: ParsedFile,
                file: str) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """What ``append`` must check under the store's lock before it appends ``parsed``:
    an organisation file's tree (check_against_store); the units people are employed in and
    requirements name (units_unknown); whose identifiers a people file unlinks
    (unlinks_of_others)."""
    if kind == "org":
        return lambda conn: check_against_store(conn, store_id, parsed, file)

    async def check(conn: asyncpg.Connection) -> None:
        errors = await units_unknown(conn, store_id, parsed, file)
        if kind == "people":
            errors += await unlinks_of_others(conn, store_id, parsed, file)
        if errors:
            raise ImportFailed(sorted(errors, key=lambda e: e.line))

    return check


def _units_named(parsed: ParsedFile) -> dict[str, tuple[int | None, str]]:
    """Each unit id a people or requirements file names: the first line naming it, and its field."""
    named: dict[str, tuple[int | None, str]] = {}
    for ev in parsed.events:
        line = parsed.lines.get((ev.family, ev.key))
        if ev.kind == EMPLOYMENT:
            units, field = [str(ev.payload["unit_id"])], "unit_id"
        elif ev.kind == REQUIREMENT:
            units, field = [str(u) for u in ev.payload["units"]], "units"
        else:
            continue
        for unit in units:
            if unit not in named or (line or 0) < (named[unit][0] or 0):
                named[unit] = (line, field)
    return named


async def units_unknown(conn: asyncpg.Connection, store_id: int, parsed: ParsedFile, file: str) -> list[RowError]:
    """An employment or a requirement naming a unit that is not in the store's organisation tree
    (no version of it imported): such a person counted under no trust or region, such a
    requirement applied to no one, and nothing said so (an audit)."""
    named = _units_named(parsed)
    if not named:
        return []
    known = {r["unit_id"] for r in await conn.fetch(sql("reference_unit_ids"), store_id, sorted(named))}
    return [RowError(file, line or 0, field, f"unit {unit} is not in this store's organisation tree: import the "
                     "org file that holds it first")
            for unit, (line, field) in sorted(named.items()) if unit not in known]


async def unlinks_of_others(conn: asyncpg.Connection, store_id: int, parsed: ParsedFile,
                            file: str) -> list[RowError]:
    """An unlink of an identifier that is linked to someone else than the person the record
    names: it took the identifier from that other person, without a word (a mistyped row)."""
    unlinks = {ev.key: ev for ev in parsed.events if ev.kind == PERSON_UNLINKED}
    if not unlinks:
        return []
    errors = []
    for r in await conn.fetch(sql("reference_links"), store_id, sorted(unlinks)):
        ev = unlinks[r["key"]]
        if r["kind"] == PERSON_LINKED and r["person_id"] != ev.payload["person_id"]:
            errors.append(RowError(file, parsed.lines.get((ev.family, ev.key)) or 0, "unlink",
                                   f"{ev.key!r} is linked to {r['person_id']!r}, not to {ev.payload['person_id']!r}: "
                                   "an unlink names the person the identifier is taken from"))
    return errors


async def check_against_store(conn: asyncpg.Connection, store_id: int, parsed: ParsedFile, file: str) -> None:
    """ImportFailed when an organisation file, over what the store holds, breaks a rule no file
    alone can show: a parent that is no unit, or has no version yet, or a unit its own ancestor
    (projections/org_tree.py). Run by ``append`` under the store's lock (``store_check``)."""
    rows = await conn.fetch(sql("reference_payloads"), store_id, "org.unit")
    stored = _versions((None, RefEvent(ORG_UNIT, r["key"], orjson.loads(r["payload"]))) for r in rows)
    new = _versions((parsed.lines.get((ev.family, ev.key)), ev) for ev in parsed.events)
    found = org_tree.problems(new, stored)
    if found:
        raise ImportFailed([RowError(file, line, "parent_id", why) for line, why in found])


# --- appending --------------------------------------------------------------------------------

async def append(conn: asyncpg.Connection, store_id: int, events: Sequence[RefEvent],
                 check: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> int:
    """Append the events that change something, in one transaction under the store's append lock.
    ``check`` runs first under the lock (an import's rules against what is stored: no other
    append can change that before this one commits), and may refuse with ImportFailed.

    Returns how many were appended (0 when the log already says all of it).
    """
    latest: dict[tuple[str, str], RefEvent] = {}
    for ev in events:
        latest.pop((ev.family, ev.key), None)
        latest[(ev.family, ev.key)] = ev  # newest wins, in order
    async with conn.transaction():
        head = await reserve(conn, store_id, 0)
        if check is not None:
            await check(conn)
        rows = await conn.fetch(sql("reference_lock_and_digests"), store_id,
                                sorted({f for f, _ in latest}), sorted({k for _, k in latest}))
        current = {(r["kind"], r["key"]): bytes(r["digest"]) for r in rows}
        changed = [ev for (fam, key), ev in latest.items() if current.get((fam, key)) != ev.digest]
        if not changed:
            return 0
        res = Reservation(head.first, len(changed), head.stored)
        await conn.execute(
            sql("reference_append"), store_id, res.positions, res.stored, [e.kind for e in changed],
            [e.family for e in changed], [e.key for e in changed], [e.digest for e in changed],
            [orjson.dumps(e.payload).decode() for e in changed])
        await commit_positions(conn, store_id, res)
        await conn.execute(sql("projection_notify"), str(store_id))
    return len(changed)


async def import_file(conn: asyncpg.Connection, store_id: int, kind: str, path: Path) -> int:
    """Check a whole file, then append what it changes; returns the number of events appended."""
    parsed = parse_file(kind, path)
    return await append(conn, store_id, parsed.events, store_check(store_id, kind, parsed, path.name))
