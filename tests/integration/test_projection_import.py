"""Reference data import: CSV and JSON files become events; a bad row refuses the whole file
with file, line and field; re-importing the same file appends nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from lrs.store.credentials import PgCredentialRepository
from projections import reference, runner
from projections.models import COMPLIANCE, TRANSCRIPT
from tests.conftest import ROOT

EXAMPLES = ROOT / "docs" / "examples"


async def _events(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events"))


@pytest.mark.parametrize(("kind", "file", "count"), [
    ("org", "org.csv", 9), ("people", "people.csv", 8), ("people", "people.json", 4),
    ("requirements", "requirements.csv", 4), ("requirements", "requirements.json", 1)])
async def test_example_files_import_once(conn: asyncpg.Connection, kind: str, file: str, count: int) -> None:
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    # people and requirements name units of the tree, which must be there first
    before = 0 if kind == "org" else await reference.import_file(conn, sid, "org", EXAMPLES / "org.csv")
    assert await reference.import_file(conn, sid, kind, EXAMPLES / file) == count
    assert await _events(conn) == before + count
    assert await reference.import_file(conn, sid, kind, EXAMPLES / file) == 0  # unchanged file: nothing
    assert await _events(conn) == before + count
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", sid) == before + count


@pytest.mark.parametrize(("kind", "name", "content", "messages"), [
    ("people", "people.csv",
     "person_id,employment_id,unit_id,valid_from\nP-1,E1,900111,2024-01-01\nP-2,E1,900999,2024-01-01\n"
     "P-3,E1,900999,2024-01-01\nP-4,E1,42,2024-01-01\n",
     ["people.csv:3: unit_id: unit 900999 is not in this store's organisation tree: import the org file that "
      "holds it first", "people.csv:5: unit_id: unit 42 is not"]),
    ("people", "people.json",
     '[{"person_id": "P-1", "employments": [{"employment_id": "E1", "unit_id": "900110", "valid_from": '
     '"2024-01-01"}, {"employment_id": "E2", "unit_id": "777", "valid_from": "2024-01-01"}]}]',
     ["people.json:1: unit_id: unit 777 is not in this store's organisation tree"]),
    ("requirements", "requirements.csv",
     "requirement_id,activity_ids,units\nfire,https://example.org/fire,900010 900123\n",
     ["requirements.csv:2: units: unit 900123 is not in this store's organisation tree"]),
])
async def test_an_employment_or_requirement_in_a_unit_not_in_the_tree_is_refused(
        tmp_path: Path, conn: asyncpg.Connection, kind: str, name: str, content: str, messages: list[str]) -> None:
    """A person employed in a unit the store's tree lacks counted under no trust or region, and a
    requirement naming one applied to no one there, without a word: the file is refused, naming
    the line and the unit; with the unit imported it goes in."""
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    org = await reference.import_file(conn, sid, "org", EXAMPLES / "org.csv")
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, kind, path)
    lines = str(err.value).splitlines()
    assert len(lines) == len(messages)
    for line, message in zip(lines, messages, strict=True):
        assert line.startswith(message)
    assert await _events(conn) == org  # nothing of the file
    missing = sorted({m.split("unit ")[1].split(" ")[0] for m in messages})
    units = tmp_path / "more-org.csv"
    units.write_text("unit_id,name,parent_id,level,valid_from\n"
                     + "".join(f"{u},Enhet {u},900010,department,2024-01-01\n" for u in missing))
    assert await reference.import_file(conn, sid, "org", units) == len(missing)
    assert await reference.import_file(conn, sid, kind, path) > 0


async def test_an_unlink_naming_another_person_than_the_identifier_s_is_refused(
        tmp_path: Path, conn: asyncpg.Connection) -> None:
    """An unlink took the identifier from whoever had it: a row naming the wrong person (P-2 for
    P-1's address) took it from P-1 without a word. It is refused naming both; the right person,
    or an identifier nobody has, goes in."""
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    linked = tmp_path / "people.csv"
    linked.write_text("person_id,identifiers\nP-1,mailto:per@example.org\nP-2,mailto:pal@example.org\n")
    assert await reference.import_file(conn, sid, "people", linked) == 2
    wrong = tmp_path / "fix.csv"
    wrong.write_text("person_id,unlink\nP-3,mailto:nobody@example.org\nP-2,mailto:per@example.org\n")
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "people", wrong)
    assert str(err.value) == ("fix.csv:3: unlink: 'mbox:mailto:per@example.org' is linked to 'P-1', not to 'P-2': "
                              "an unlink names the person the identifier is taken from")
    assert await _events(conn) == 2
    wrong.write_text("person_id,unlink\nP-3,mailto:nobody@example.org\nP-1,mailto:per@example.org\n")
    assert await reference.import_file(conn, sid, "people", wrong) == 2


async def test_examples_fold_into_the_read_models(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    pc = await runner.connect(db_url)
    try:
        for kind, file in (("org", "org.csv"), ("people", "people.csv"), ("people", "people.json"),
                           ("requirements", "requirements.csv")):
            await reference.import_file(pc, sid, kind, EXAMPLES / file)
        await runner.catch_up(pc, COMPLIANCE)
    finally:
        await pc.close()
    assert await conn.fetchval("SELECT count(*) FROM rm_compliance.units") == 9
    assert await conn.fetchval("SELECT count(*) FROM rm_compliance.employments") == 5
    assert await conn.fetchval(
        "SELECT person_id FROM rm_compliance.links WHERE ifi = 'mbox:mailto:kari.nordmann@example.org'") == "P-0001"
    assert await conn.fetchval(
        "SELECT validity_days FROM rm_compliance.requirements WHERE requirement_id = 'fire'") is None


async def test_an_unlink_takes_an_identifier_from_its_person(db_url: str, tmp_path: Path,
                                                              conn: asyncpg.Connection) -> None:
    # a mistaken link (or an address given to someone else) is undone by a later file's unlink:
    # the identifier is nobody's again, so it counts as a person of its own in every read model
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    linked = tmp_path / "people.csv"
    linked.write_text("person_id,identifiers\nP-1,mailto:per@example.org;mailto:shared@example.org\n")
    unlinked = tmp_path / "fix.json"
    unlinked.write_text('[{"person_id": "P-1", "unlink": ["mailto:shared@example.org"]}]')
    pc = await runner.connect(db_url)
    try:
        assert await reference.import_file(pc, sid, "people", linked) == 2
        await runner.catch_up(pc, COMPLIANCE)
        await runner.catch_up(pc, TRANSCRIPT)
        assert await reference.import_file(pc, sid, "people", unlinked) == 1
        assert await reference.import_file(pc, sid, "people", unlinked) == 0  # again: nothing
        await runner.catch_up(pc, COMPLIANCE)
        await runner.catch_up(pc, TRANSCRIPT)
    finally:
        await pc.close()
    row = await conn.fetchrow("SELECT kind, payload FROM events ORDER BY position DESC LIMIT 1")
    assert row["kind"] == "person.unlinked"
    assert row["payload"] == {"ifi": "mbox:mailto:shared@example.org", "person_id": "P-1"}
    # each address with its mbox_sha1sum form (0036): the unlinked one's went with it
    per_hash = "sha1:" + hashlib.sha1(b"mailto:per@example.org").hexdigest()
    for schema in ("rm_compliance", "rm_transcript"):
        links = await conn.fetch(f"SELECT ifi, person_id FROM {schema}.links ORDER BY ifi")
        assert [tuple(r) for r in links] == [("mbox:mailto:per@example.org", "P-1"), (per_hash, "P-1")]


async def test_a_changed_row_appends_only_that_row(tmp_path: Path, conn: asyncpg.Connection) -> None:
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    text = (EXAMPLES / "org.csv").read_text()
    await reference.import_file(conn, sid, "org", EXAMPLES / "org.csv")
    changed = tmp_path / "org.csv"
    changed.write_text(text.replace("Hjertepost 1", "Hjertepost 1A"))
    assert await reference.import_file(conn, sid, "org", changed) == 1
    row = await conn.fetchrow("SELECT kind, payload FROM events ORDER BY position DESC LIMIT 1")
    assert row["kind"] == "org.unit" and row["payload"]["name"] == "Hjertepost 1A"


@pytest.mark.parametrize(("kind", "name", "content", "message"), [
    ("org", "org.csv", "unit_id,name,level,valid_from\n1,A,trust,2024-01-01\n2,B,trust,2024-13-01\n",
     "org.csv:3: valid_from: '2024-13-01' is not a date"),
    ("org", "org.csv", "unit_id,id_kind,name,level,valid_from\n12345,orgnr,A,trust,2024-01-01\n",
     "org.csv:2: unit_id: an organisation number has 9 digits"),
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from\nP1,kari@example.org,E1,1,"
     "2024-01-01\n", "people.csv:2: identifiers[0]: must be"),
    ("people", "people.json", '[\n {"person_id": "P1", "employments": []},\n {"person_id": "P2",\n  "employments":'
     ' [{"employment_id": "E1", "valid_from": "2024-01-01"}]}\n]',
     "people.json:3: employments[0].unit_id: is required"),
    # one identifier linked and unlinked: said so (it read "differs from line 2" on line 2)
    ("people", "people.json", '[{"person_id": "P-1", "identifiers": ["mailto:a@example.org"],'
     ' "unlink": ["mailto:a@example.org"]}]',
     "people.json:1: (row): 'mbox:mailto:a@example.org' is both linked and unlinked (also on this row)"),
    # an object or a text where the list belongs was read as no employment (exit 0, nothing due)
    ("people", "people.json", '[{"person_id": "R-21", "employments": {"employment_id": "E1"}}]',
     "people.json:1: employments: must be a list of employment objects"),
    ("people", "people.json", '[{"person_id": "R-21", "employments": "E1"}]',
     "people.json:1: employments: must be a list of employment objects"),
    ("requirements", "req.csv", "requirement_id,activity_ids,validity_days\nr1,https://c.example.org/a,0\n",
     "req.csv:2: validity_days: must be a whole number of days from 1 to 36500"),
    ("requirements", "req.csv", "requirement_id,activity_ids,validity_days\nr1,https://c.example.org/a,999999999\n",
     "req.csv:2: validity_days: must be a whole number of days from 1 to 36500"),
    ("requirements", "req.csv",
     "requirement_id,activity_ids\nr1,https://c.example.org/a\nr1,https://c.example.org/b\n",
     "req.csv:3: (row): requirement.set 'r1' differs from line 2"),
    # (found by a fuzz round: accepted, then a read model's index refused the row and the
    # projections stopped; or a traceback instead of "import refused")
    ("org", "org.csv", "unit_id,name,level,valid_from\n" + "1" * 300 + ",A,trust,2024-01-01\n",
     "org.csv:2: unit_id: is 300 characters long; at most 200"),
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from\nP1,mailto:a@example.org,E1,"
     + "9" * 3000 + ",2024-01-01\n", "people.csv:2: unit_id: is 3000 characters long; at most 200"),
    ("org", "org.csv", "unit_id,name,level,valid_from\n1,A\x00B,trust,2024-01-01\n",
     "org.csv:2: name: must not hold control characters"),
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from\nP1\x1fE,mailto:a@example.org,"
     "E1,1,2024-01-01\n", "people.csv:2: person_id: must not hold control characters"),
    ("org", "org.csv", "unit_id,name,level,valid_from\n\u0661\u0662,A,trust,2024-01-01\n",
     "org.csv:2: unit_id: must be digits"),
    ("requirements", "req.csv", "requirement_id,activity_ids,validity_days\nr1,https://c.example.org/a,3_65\n",
     "req.csv:2: validity_days: must be a whole number"),
    ("org", "org.json", '[{"unit_id": "1", "name": "A", "level": "trust", "valid_from": "2024-01-01"}',
     "org.json:1: (json): the array is not closed"),
    # an import audit: a column or member no kind has was left out without a word (a Valid_To
    # column dropped kept a leaver employed); one header error, not "is required" on every row
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from,valid_until\n"
     "P1,mailto:a@example.org,E1,1,2020-01-01,2024-06-30\n",
     "people.csv:1: (header): unknown column 'valid_until'; a people file has the columns person_id, "),
    ("org", "org.csv", "unit_id;name;level;valid_from\n1;A;trust;2024-01-01\n",
     "org.csv:1: (header): no column unit_id, name, level, valid_from; unknown column "
     "'unit_id;name;level;valid_from'; a org file has the columns unit_id, id_kind, name, parent_id, level, "
     "valid_from, closed (the header is separated by ';'"),
    ("requirements", "req.json", '[{"requirement_id": "r1", "activity_ids": ["https://c.example.org/a"],'
     ' "Validity_Days": 365}]', "req.json:1: (record): the record of 'r1' has unknown member(s) 'Validity_Days'"),
    ("people", "people.json", '[{"person_id": "P1", "employments": [{"employment_id": "E1", "unit_id": "1",'
     ' "valid_from": "2024-01-01", "validTo": "2025-01-01"}]}]',
     "people.json:1: (record): the record of 'P1' has unknown member(s) 'employments[].validTo'"),
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from,valid_to\n"
     "P1,mailto:a@example.org,E1,1,2021-01-01,,2025-01-01\n", "people.csv:2: (row): has 7 cells; the header names 6"),
    ("org", "org.csv", "unit_id,name,level,valid_from\n1,A,trust,20240101\n",
     "org.csv:2: valid_from: '20240101' is not a date (YYYY-MM-DD)"),
    ("org", "org.csv", "unit_id,name,level,valid_from\n1,A,trust,2024-W01-1\n",
     "org.csv:2: valid_from: '2024-W01-1' is not a date"),
    ("org", "org.json", '[{"unit_id": "1", "name": "A", "level": "trust", "valid_from": "2024-01-01", "closed": {}}]',
     "org.json:1: closed: must be true or false"),
    ("org", "org.csv", "unit_id,name,level,valid_from\n", "org.csv:1: (file): holds no org records"),
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from\n"
     "P1,mailto:a@example.org,E1,Hjerteavdelingen,2024-01-01\n",
     "people.csv:2: unit_id: 'Hjerteavdelingen' is not a unit id"),
    ("people", "people.csv", "person_id,identifiers,employment_id,unit_id,valid_from\n"
     "P1,mailto:a@example.org,E1,9.74589E+08,2024-01-01\n", "people.csv:2: unit_id: '9.74589E+08' is not a unit id"),
    ("requirements", "req.csv", "requirement_id,activity_ids,units\nr1,https://c.example.org/a,Medisinsk klinikk\n",
     "req.csv:2: units: 'Medisinsk' is not a unit id"),
    # a quote left open swallowed the lines after it into one cell, reported lines later
    ("org", "org.csv", 'unit_id,name,level,valid_from\n1,A,trust,2024-01-01\n2,"B,trust,2024-01-01\n'
     '3,C,trust,2024-01-01\n', "org.csv:3: (csv): unexpected end of data"),
    ("org", "org.json", '[{"unit_id": "1", "name": "A", "level": "trust", "valid_from": "2024-01-01"}]\nmore',
     "org.json:1: (json): text after the array"),
    ("org", "org.json", '[{"unit_id": "1", "name": "A", "level": "trust", "valid_from": "2024-01-01"}\n'
     ' {"unit_id": "2", "name": "B", "level": "trust", "valid_from": "2024-01-01"}]',
     "org.json:2: (json): expected ',' or ']' after an item"),
    ("org", "org.json", '[{"unit_id": "1", "name": "\\ud800", "level": "trust", "valid_from": "2024-01-01"}]',
     "org.json:1: name: must not hold control characters (NUL, line breaks, U+001F) or lone surrogates"),
    ("org", "org.json", "[" + '{"a":' * 50_000 + "1" + "}" * 50_000 + "]", "org.json:1: (json): nested too deeply"),
    ("org", "org.json", '[{"unit_id": 1' + "0" * 5000 + "}]", "org.json:1: (json): Exceeds the limit"),
    ("org", "org.csv", "unit_id,name,level,name,valid_from\n1,A,trust,B,2024-01-01\n",
     "org.csv:1: (header): column name appears twice"),
    ("people", "people.json", '[{"person_id": "P1", "identifiers": [{"mbox": 5}]}]',
     "people.json:1: identifiers[0]: must be an xAPI agent"),
    ("people", "people.csv", "person_id,unlink\nP1,kari@example.org\n", "people.csv:2: unlink[0]: must be"),
    ("people", "people.json", '[{"person_id": "P1", "unlink": [{"mbox": "kari@example.org"}]}]',
     "people.json:1: unlink[0]: must be an xAPI agent"),
    ("people", "people.csv", "person_id,identifiers,unlink\nP1,mailto:a@example.org,\nP1,,mailto:a@example.org\n",
     "people.csv:3: (row): 'mbox:mailto:a@example.org' is both linked and unlinked (also on line 2)"),
    ("people", "people.json", '[{"person_id": "P1", "identifiers": [{"mbox": "mailto:a@example.org", '
     '"account": {"homePage": "https://id.example.org", "name": "a"}}]}]',
     "people.json:1: identifiers[0]: must be an xAPI agent"),
])
async def test_a_bad_row_refuses_the_whole_file_naming_file_line_and_field(
        tmp_path: Path, conn: asyncpg.Connection, kind: str, name: str, content: str, message: str) -> None:
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, kind, path)
    assert message in str(err.value)
    assert await _events(conn) == 0


async def test_a_json_file_on_one_line_names_the_item_that_is_wrong(tmp_path: Path, conn: asyncpg.Connection) -> None:
    """Many exports write a JSON array on one line: every error said "line 1", whichever of the
    file's people was wrong. An item sharing its line with another is named by its number too;
    a file of one item a line is named by lines alone, as before."""
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    path = tmp_path / "people.json"
    people = [{"person_id": f"P-{n}", "employments": [{"employment_id": "E1", "unit_id": "900110",
                                                       "valid_from": "2024-01-01"}]} for n in range(1, 5)]
    people[2]["employments"][0]["unit_id"] = "Hjerteavdelingen"
    path.write_text(json.dumps(people))
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "people", path)
    assert str(err.value).startswith("people.json:1 (item 3): employments[0].unit_id: 'Hjerteavdelingen' is not")
    path.write_text("[\n" + ",\n".join(json.dumps(p) for p in people) + "\n]")
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "people", path)
    assert str(err.value).startswith("people.json:4: employments[0].unit_id: 'Hjerteavdelingen' is not")
    path.write_text(json.dumps(people[:2])[:-1] + ', {"person_id": "P-9",}]')
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "people", path)
    assert str(err.value).startswith("people.json:1 (item 3): (json): Expecting property name enclosed in double "
                                     "quotes (column ")
    path.write_text('[{"person_id": "P-1", "identifiers": ["mailto:a@example.org"]}, '
                    '{"person_id": "P-1", "unlink": ["mailto:a@example.org"]}]')
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "people", path)
    assert str(err.value) == ("people.json:1 (item 2): (row): 'mbox:mailto:a@example.org' is both linked and "
                              "unlinked (also on line 1 (item 1)); a file either links an identifier or unlinks it")
    path.write_text(json.dumps(people[:2])[:-1] + ', {"person_id": "P-9", "Unit": "1"}]')
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "people", path)
    assert str(err.value).startswith("people.json:1 (item 3): (record): the record of 'P-9' has unknown member(s)")


async def test_headers_in_any_case_a_norwegian_level_and_a_record_over_lines(
        tmp_path: Path, conn: asyncpg.Connection) -> None:
    """Column names are read without case or surrounding spaces ("Valid_To"); a level may be a
    Norwegian word (område); a record whose quoted cell spans lines is named by its first line
    (it was named by its last)."""
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    path = tmp_path / "org.csv"
    path.write_text(' Unit_ID ,NAME,Level,Valid_From\n1,"Helse\nEksempel",område,2024-01-01\n2,B,trust,2024-13-01\n')
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "org", path)
    assert str(err.value).splitlines() == [
        "org.csv:2: name: must not hold control characters (NUL, line breaks, U+001F) or lone surrogates",
        "org.csv:4: valid_from: '2024-13-01' is not a date (YYYY-MM-DD)"]
    path.write_text(' Unit_ID ,NAME,Level,Valid_From\n1,Helse Eksempel,område,2024-01-01\n')
    assert await reference.import_file(conn, sid, "org", path) == 1


@pytest.mark.parametrize(("content", "message"), [
    ("unit_id,name,level,valid_from\n1,Bod\u00f8,trust,2024-01-01\n".encode("latin-1"),
     "org.csv:2: (file): is not UTF-8 text"),
    (b"unit_id,name,level,valid_from\n1," + b"x" * 200_000 + b",trust,2024-01-01\n",
     "org.csv:2: (csv): field larger than field limit"),
])
async def test_a_file_that_cannot_be_read_as_records_is_refused_naming_where(
        tmp_path: Path, conn: asyncpg.Connection, content: bytes, message: str) -> None:
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    path = tmp_path / "org.csv"
    path.write_bytes(content)
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "org", path)
    assert message in str(err.value)
    assert await _events(conn) == 0


ORG_HEADER = "unit_id,name,parent_id,level,valid_from\n"


@pytest.mark.parametrize(("rows", "message"), [
    ("20,Ny klinikk,999,division,2024-01-01\n", "org.csv:2: parent_id: unit 999 is neither in this file nor stored"),
    ("20,Ny klinikk,x9,division,2024-01-01\n", "org.csv:2: parent_id: must be digits"),
    ("20,Ny klinikk,20,division,2024-01-01\n", "org.csv:2: parent_id: a unit cannot be its own parent"),
    ("20,Ny klinikk,21,division,2024-01-01\n21,Ny seksjon,20,section,2024-01-01\n",
     "org.csv:2: parent_id: makes a cycle on 2024-01-01: 20 → 21 → 20"),
    # the stored trust (900010, from 2020) under its own division from 2025
    ("900010,Eksempelsykehuset HF,900100,trust,2025-01-01\n",
     "org.csv:2: parent_id: makes a cycle on 2025-01-01: 900010 → 900100 → 900010"),
    ("20,Ny klinikk,21,division,2024-01-01\n21,Ny trust,900001,trust,2025-01-01\n",
     "org.csv:2: parent_id: unit 21 has no version on or before 2024-01-01 (its first is from 2025-01-01)"),
])
async def test_an_org_file_that_breaks_the_tree_with_the_stored_units_is_refused(
        tmp_path: Path, conn: asyncpg.Connection, rows: str, message: str) -> None:
    """Over the stored units (the example tree), a parent that is no unit or has no version yet
    on the date, and a unit its own ancestor, refuse the file and append nothing."""
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    assert await reference.import_file(conn, sid, "org", EXAMPLES / "org.csv") == 9
    path = tmp_path / "org.csv"
    path.write_text(ORG_HEADER + rows)
    with pytest.raises(reference.ImportFailed) as err:
        await reference.import_file(conn, sid, "org", path)
    assert message in str(err.value)
    assert await _events(conn) == 9


async def test_two_org_files_that_make_a_cycle_together_are_not_both_applied(
        db_url: str, tmp_path: Path, conn: asyncpg.Connection) -> None:
    """Each file is a tree over the stored units; together they put two trusts under each other.
    The check runs under the store's append lock, so the second sees the first."""
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    await reference.import_file(conn, sid, "org", EXAMPLES / "org.csv")
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    one.write_text(ORG_HEADER + "900010,Eksempelsykehuset HF,900011,trust,2025-01-01\n")
    two.write_text(ORG_HEADER + "900011,Fjordby sykehus HF,900010,trust,2025-01-01\n")
    conns = [await runner.connect(db_url) for _ in range(2)]
    try:
        outcomes = await asyncio.gather(*(reference.import_file(c, sid, "org", p)
                                          for c, p in zip(conns, (one, two), strict=True)), return_exceptions=True)
    finally:
        for c in conns:
            await c.close()
    assert sorted(type(o).__name__ for o in outcomes) == ["ImportFailed", "int"]
    refused = next(o for o in outcomes if isinstance(o, reference.ImportFailed))
    assert "makes a cycle on 2025-01-01" in str(refused)
    assert await _events(conn) == 10


async def test_an_org_file_may_hang_new_units_under_stored_ones(tmp_path: Path, conn: asyncpg.Connection) -> None:
    sid = await PgCredentialRepository(conn).create_store("hf", None)
    await reference.import_file(conn, sid, "org", EXAMPLES / "org.csv")
    path = tmp_path / "org.csv"
    path.write_text(ORG_HEADER + "20,Ny klinikk,900010,division,2024-01-01\n21,Ny seksjon,20,section,2024-06-01\n")
    assert await reference.import_file(conn, sid, "org", path) == 2


def _spor(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOR_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "projections.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_import_and_projection_commands(db_url: str, tmp_path: Path, conn: asyncpg.Connection) -> None:
    await PgCredentialRepository(conn).create_store("hf", None)
    await PgCredentialRepository(conn).create_store("other", None)
    ok = _spor(db_url, "import", "org", str(EXAMPLES / "org.csv"), "--store", "hf")
    assert ok.returncode == 0, ok.stderr
    assert "9 events appended" in ok.stdout
    again = _spor(db_url, "import", "org", str(EXAMPLES / "org.csv"), "--store", "hf")
    assert "0 events appended" in again.stdout and "nothing changed" in again.stdout
    bad = tmp_path / "people.csv"
    bad.write_text("person_id,employment_id,unit_id,valid_from\nP1,E1,1,yesterday\n")
    refused = _spor(db_url, "import", "people", str(bad), "--store", "hf")
    assert refused.returncode == 2
    assert "people.csv:2: valid_from: 'yesterday' is not a date" in refused.stderr
    orphan = tmp_path / "org.csv"
    orphan.write_text("unit_id,name,parent_id,level,valid_from\n20,Ny klinikk,999,division,2024-01-01\n")
    refused = _spor(db_url, "import", "org", str(orphan), "--store", "hf")
    assert refused.returncode == 2
    assert "org.csv:2: parent_id: unit 999 is neither in this file nor stored" in refused.stderr
    status = _spor(db_url, "projections", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"lag_events": 9' in status.stdout
    rebuilt = _spor(db_url, "projections", "rebuild", "compliance")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "compliance: rebuilt from 9 events" in rebuilt.stdout
    assert "rebuild compliance [" in rebuilt.stderr  # the progress bar
    assert await conn.fetchval("SELECT count(*) FROM rm_compliance.units") == 9
    # the records of the file, not its events (4 rows link 4 identifiers and hold 4 employments)
    people = _spor(db_url, "import", "people", str(EXAMPLES / "people.csv"), "--store", "other")
    assert people.returncode == 2  # store other has no tree yet
    assert "people.csv:2: unit_id: unit 900111 is not in this store's organisation tree" in people.stderr
    assert _spor(db_url, "import", "org", str(EXAMPLES / "org.csv"), "--store", "other").returncode == 0
    people = _spor(db_url, "import", "people", str(EXAMPLES / "people.csv"), "--store", "other")
    assert people.returncode == 0, people.stderr
    assert "people.csv: 4 records read, 8 events appended to store other" in people.stdout
