"""Unit tests for lrs.http.multipart: parsing, attachment matching and building multipart/mixed."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import time
from typing import Any

import pytest

from lrs.errors import BadRequest, PayloadTooLarge
from lrs.http.multipart import (
    MAX_PARTS,
    AttachmentPart,
    build_multipart_mixed,
    check_attachments,
    declared_content_types,
    declared_hashes,
    hash_algorithm_for,
    parse_statement_multipart,
    parts_allowed,
)

BOUNDARY = "-------314159265358979323846"
CT = f"multipart/mixed; boundary={BOUNDARY}"
LIMIT = 10 * 1024 * 1024
TEXT = b"here is a simple attachment"
TEXT_SHA = hashlib.sha256(TEXT).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def statement(*attachments: dict[str, Any]) -> dict[str, Any]:
    stmt: dict[str, Any] = {
        "actor": {"mbox": "mailto:learner@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "http://example.com/activities/multipart"},
    }
    if attachments:
        stmt["attachments"] = list(attachments)
    return stmt


def attachment(sha2: str, *, file_url: str | None = None, content_type: str = "text/plain") -> dict[str, Any]:
    att = {
        "usageType": "http://example.com/attachment-usage/test",
        "display": {"en-US": "A test attachment"},
        "contentType": content_type,
        "length": 27,
        "sha2": sha2,
    }
    if file_url is not None:
        att["fileUrl"] = file_url
    return att


def part_bytes(content: bytes, headers: list[str], eol: str = "\r\n") -> bytes:
    """One encapsulation: delimiter line, headers, blank line, content (no trailing CRLF)."""
    head = f"--{BOUNDARY}{eol}" + "".join(h + eol for h in headers) + eol
    return head.encode() + content


def body_of(
    json_body: bytes,
    *attachments: tuple[bytes, list[str]],
    json_headers: list[str] | None = None,
    eol: str = "\r\n",
    preamble: bytes = b"",
    epilogue: bytes = b"\r\n",
) -> bytes:
    """A multipart/mixed body as RFC 2046 describes it."""
    pieces = [
        part_bytes(
            json_body,
            json_headers if json_headers is not None else ["Content-Type: application/json"],
            eol,
        )
    ]
    pieces += [part_bytes(content, headers, eol) for content, headers in attachments]
    return preamble + eol.encode().join(pieces) + f"{eol}--{BOUNDARY}--".encode() + epilogue


def att_headers(sha2: str, content_type: str = "text/plain") -> list[str]:
    return [
        f"Content-Type: {content_type}",
        "Content-Transfer-Encoding: binary",
        f"X-Experience-API-Hash: {sha2}",
    ]


# --------------------------------------------------------------------------------------------
# parse_statement_multipart: accepted bodies
# --------------------------------------------------------------------------------------------


def test_parses_the_spec_style_example_with_quoted_boundary_and_no_space_after_colons() -> None:
    boundary = "abcABC0123'()+_,-./:=?"
    stmt = json.dumps(statement(attachment(TEXT_SHA))).encode()
    body = (
        b"\r\n--"
        + boundary.encode()
        + b"\r\nContent-Type:application/json\r\n\r\n"
        + stmt
        + b"\r\n--"
        + boundary.encode()
        + b"\r\nContent-Type:text/plain\r\n"
        b"Content-Transfer-Encoding:binary\r\nX-Experience-API-Hash:"
        + TEXT_SHA.encode()
        + b"\r\n\r\n"
        + TEXT
        + b"\r\n--"
        + boundary.encode()
        + b"--"
    )
    json_body, parts = parse_statement_multipart(body, f'multipart/mixed; boundary="{boundary}"', max_part_bytes=LIMIT)
    assert json_body == stmt
    assert parts == [AttachmentPart(sha2=TEXT_SHA, content_type="text/plain", content=TEXT)]


def test_parses_several_binary_attachments_byte_for_byte() -> None:
    # Data with CRLFs, a dash run that is not the delimiter and a trailing CRLF must survive.
    blob = bytes(range(256)) * 40 + b"\r\n--" + BOUNDARY[:-1].encode() + b"x\r\n"
    image = b"\xff\xd8\xff\xe0" + bytes(1000) + b"\r\n\r\n"
    stmt = json.dumps(statement(attachment(sha256(blob)), attachment(sha256(image)))).encode()
    body = body_of(
        stmt,
        (blob, att_headers(sha256(blob), "application/octet-stream")),
        (image, att_headers(sha256(image), "image/jpeg")),
    )
    json_body, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert json.loads(json_body) == json.loads(stmt)
    assert [(p.content_type, p.content) for p in parts] == [
        ("application/octet-stream", blob),
        ("image/jpeg", image),
    ]
    assert [p.sha2 for p in parts] == [sha256(blob), sha256(image)]


def test_accepts_only_a_json_part_without_attachments() -> None:
    json_body, parts = parse_statement_multipart(body_of(b"[]"), CT, max_part_bytes=LIMIT)
    assert (json_body, parts) == (b"[]", [])


def test_ignores_preamble_and_epilogue() -> None:
    body = body_of(
        b"{}",
        (TEXT, att_headers(TEXT_SHA)),
        preamble=b"This is a preamble.\r\n",
        epilogue=b"\r\nand an epilogue\r\n",
    )
    json_body, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert json_body == b"{}"
    assert parts[0].content == TEXT


def test_accepts_bodies_with_bare_lf_line_breaks() -> None:
    body = body_of(b"{}", (TEXT, att_headers(TEXT_SHA)), eol="\n")
    json_body, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert json_body == b"{}"
    assert parts[0].content == TEXT


def test_accepts_transport_padding_after_boundary_and_params_in_any_case() -> None:
    body = body_of(b"{}", (TEXT, att_headers(TEXT_SHA))).replace(
        f"--{BOUNDARY}\r\n".encode(), f"--{BOUNDARY}  \t\r\n".encode()
    )
    ct = f'Multipart/Mixed; charset=utf-8; BOUNDARY="{BOUNDARY}"'
    json_body, parts = parse_statement_multipart(body, ct, max_part_bytes=LIMIT)
    assert json_body == b"{}"
    assert parts[0].content == TEXT


def test_header_names_and_transfer_encoding_are_case_insensitive_and_hash_is_lowercased() -> None:
    headers = [
        "content-type: text/plain",
        "CONTENT-TRANSFER-ENCODING: BINARY",
        f"x-experience-api-hash: {TEXT_SHA.upper()}",
    ]
    body = body_of(
        b"{}",
        (TEXT, headers),
        json_headers=["Content-Type: application/json; charset=utf-8"],
    )
    _, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert parts[0].sha2 == TEXT_SHA


def test_folded_header_lines_are_joined() -> None:
    headers = [
        "Content-Type: text/plain;",
        "\tcharset=ascii",
        "Content-Transfer-Encoding: binary",
        f"X-Experience-API-Hash: {TEXT_SHA}",
    ]
    _, parts = parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)
    assert parts[0].content_type == "text/plain; charset=ascii"


def test_attachment_part_without_content_type_defaults_to_rfc2046_text_plain() -> None:
    headers = [
        "Content-Transfer-Encoding: binary",
        f"X-Experience-API-Hash: {TEXT_SHA}",
    ]
    _, parts = parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)
    assert parts[0].content_type == "text/plain; charset=us-ascii"


def test_empty_attachment_content_is_an_empty_part() -> None:
    empty_sha = sha256(b"")
    body = body_of(b"{}", (b"", att_headers(empty_sha)))
    _, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert parts[0].content == b""
    # A writer may also let the blank line and the next delimiter share one CRLF.
    shared = body.replace(
        b"\r\n\r\n\r\n--" + BOUNDARY.encode() + b"--",
        b"\r\n\r\n--" + BOUNDARY.encode() + b"--",
    )
    assert shared != body
    _, parts = parse_statement_multipart(shared, CT, max_part_bytes=LIMIT)
    assert parts[0].content == b""


def test_a_part_of_exactly_the_limit_is_accepted() -> None:
    data = b"x" * 100
    _, parts = parse_statement_multipart(body_of(b"{}", (data, att_headers(sha256(data)))), CT, max_part_bytes=100)
    assert parts[0].content == data


def test_multi_megabyte_body_parses_fast() -> None:
    big = (bytes(range(256)) * 4096) * 24  # 24 MiB with many CR, LF and '-' bytes
    stmt = json.dumps(statement(attachment(sha256(big)))).encode()
    body = body_of(stmt, (big, att_headers(sha256(big), "application/octet-stream")))
    started = time.process_time()  # this process's CPU, not the wall clock of a shared machine
    _, parts = parse_statement_multipart(body, CT, max_part_bytes=64 * 1024 * 1024)
    elapsed = time.process_time() - started
    assert parts[0].content == big
    assert elapsed < 1.0, f"parsing 24 MiB took {elapsed:.2f}s of CPU"


# --------------------------------------------------------------------------------------------
# parse_statement_multipart: rejected bodies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (
            f"multipart/form-data; boundary={BOUNDARY}",
            "expected a multipart/mixed Content-Type, got multipart/form-data",
        ),
        (
            "application/json",
            "expected a multipart/mixed Content-Type, got application/json",
        ),
        ("", "expected a multipart/mixed Content-Type, got none"),
        ("multipart/mixed;", "multipart/mixed Content-Type has no boundary parameter"),
        (
            'multipart/mixed; boundary=""',
            "multipart/mixed Content-Type has no boundary parameter",
        ),
        (
            "multipart/mixed; boundary=gr\u00fcn",
            "multipart/mixed boundary must be ASCII",
        ),
    ],
)
def test_rejects_bad_content_types(content_type: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_statement_multipart(body_of(b"{}"), content_type, max_part_bytes=LIMIT)


def test_rejects_body_without_the_boundary() -> None:
    with pytest.raises(BadRequest, match="does not contain the boundary given in the Content-Type"):
        parse_statement_multipart(b'{"actor": {}}', CT, max_part_bytes=LIMIT)


def test_rejects_statement_placed_before_the_first_boundary() -> None:
    # Conformance XAPI-00131: the JSON is preamble, so the first part is the text attachment.
    body = (
        b"Content-Type: application/json\r\n\r\n{}\r\n"
        + part_bytes(TEXT, att_headers(TEXT_SHA))
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    with pytest.raises(
        BadRequest,
        match=r"part 1 must have Content-Type application/json .*got text/plain",
    ):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_first_part_that_is_not_json() -> None:
    # Conformance XAPI-00134.
    body = body_of(b"{}", (TEXT, att_headers(TEXT_SHA)), json_headers=["Content-Type: text/plain"])
    with pytest.raises(BadRequest, match="part 1 must have Content-Type application/json"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_first_part_without_content_type() -> None:
    body = body_of(b"{}", json_headers=["X-Something: 1"])
    with pytest.raises(BadRequest, match=r"application/json \(it holds the statements\), got none"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_body_with_no_parts() -> None:
    with pytest.raises(BadRequest, match="multipart body has no parts"):
        parse_statement_multipart(f"--{BOUNDARY}--\r\n".encode(), CT, max_part_bytes=LIMIT)


def test_rejects_body_without_close_delimiter() -> None:
    body = body_of(b"{}", (TEXT, att_headers(TEXT_SHA))).rsplit(b"\r\n--", 1)[0]
    with pytest.raises(
        BadRequest,
        match="not terminated by the closing boundary \\(part 2 never ends\\)",
    ):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_part_without_blank_line_after_headers() -> None:
    body = (
        part_bytes(b"{}", ["Content-Type: application/json"])
        + f"\r\n--{BOUNDARY}\r\nContent-Type: text/plain\r\n".encode()
        + TEXT
        + f"\r\n--{BOUNDARY}--".encode()
    )
    with pytest.raises(BadRequest, match="part 2 has no blank line after its headers"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_malformed_header_line() -> None:
    headers = [
        "Content-Type: text/plain",
        "this is not a header",
        f"X-Experience-API-Hash: {TEXT_SHA}",
    ]
    with pytest.raises(BadRequest, match="part 2 has a malformed header line: 'this is not a header'"):
        parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)


@pytest.mark.parametrize("control", ["\r", "\x0b", "\x00", "\x7f", "\x1b"])
def test_rejects_a_control_character_in_a_part_header(control: str) -> None:
    # A bare CR kept in the stored Content-Type would forge or break response headers.
    headers = [f"Content-Type: text/plain{control}X-Injected: 1", "Content-Transfer-Encoding: binary",
               f"X-Experience-API-Hash: {TEXT_SHA}"]
    named = "a NUL character" if control == "\x00" else "a control character"
    with pytest.raises(BadRequest, match=f"part 2 has {named} \\(U\\+{ord(control):04X}\\) in a header"):
        parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)


def test_a_tab_in_a_part_header_is_not_a_control_character() -> None:
    headers = ["Content-Type:\ttext/plain", "Content-Transfer-Encoding: binary", f"X-Experience-API-Hash: {TEXT_SHA}"]
    _, parts = parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)
    assert parts[0].content_type == "text/plain"


@pytest.mark.parametrize("close", [False, True])
def test_names_a_boundary_after_a_bare_lf_in_a_crlf_body(close: bool) -> None:
    # The first delimiter line ends in CRLF; a later one in LF is no delimiter, and the part
    # before it would swallow the rest. Say so rather than report the JSON as broken.
    tail = f"\n--{BOUNDARY}--\r\n" if close else f"\n--{BOUNDARY}\n"
    body = (f"--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{}}".encode() + tail.encode()
            + b"more" + f"\r\n--{BOUNDARY}--\r\n".encode())
    with pytest.raises(BadRequest, match="part 1 contains the boundary after a bare LF line break"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_data_holding_the_boundary_text_mid_line_is_not_a_bare_lf_delimiter() -> None:
    data = f"x\n--{BOUNDARY}abc and more".encode()
    body = body_of(b"{}", (data, att_headers(sha256(data))))
    _, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert parts[0].content == data


def test_rejects_attachment_part_without_hash_header() -> None:
    # Conformance XAPI-00132.
    headers = ["Content-Type: text/plain", "Content-Transfer-Encoding: binary"]
    with pytest.raises(BadRequest, match="part 2 has no X-Experience-API-Hash header"):
        parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)


def test_rejects_statements_split_over_two_json_parts() -> None:
    # Conformance XAPI-00133: the second JSON part is not an attachment.
    body = body_of(
        b"{}",
        (b"{}", ["Content-Type: application/json"]),
        (TEXT, att_headers(TEXT_SHA)),
    )
    with pytest.raises(BadRequest, match="part 2 has no X-Experience-API-Hash header"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_attachment_part_without_transfer_encoding() -> None:
    headers = ["Content-Type: text/plain", f"X-Experience-API-Hash: {TEXT_SHA}"]
    with pytest.raises(
        BadRequest,
        match=f"part 2 \\(X-Experience-API-Hash {TEXT_SHA}\\) has no "
        "Content-Transfer-Encoding header; xAPI requires Content-Transfer-Encoding: binary",
    ):
        parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)


def test_rejects_attachment_part_with_base64_transfer_encoding() -> None:
    # Conformance XAPI-00135.
    headers = [
        "Content-Type: text/plain",
        "Content-Transfer-Encoding: base64",
        f"X-Experience-API-Hash: {TEXT_SHA}",
    ]
    with pytest.raises(BadRequest, match="has Content-Transfer-Encoding base64; xAPI requires binary"):
        parse_statement_multipart(body_of(b"{}", (TEXT, headers)), CT, max_part_bytes=LIMIT)


def test_rejects_boundary_string_followed_by_other_characters() -> None:
    body = body_of(b"{}" + f"\r\n--{BOUNDARY}junk".encode(), (TEXT, att_headers(TEXT_SHA)))
    with pytest.raises(BadRequest, match="malformed boundary line after part 1"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_malformed_first_boundary_line() -> None:
    body = f"--{BOUNDARY}junk\r\n".encode() + body_of(b"{}")
    with pytest.raises(BadRequest, match="the first boundary line is malformed"):
        parse_statement_multipart(body, CT, max_part_bytes=LIMIT)


def test_rejects_attachment_part_over_the_limit_with_413() -> None:
    data = b"x" * 101
    with pytest.raises(PayloadTooLarge, match="part 2 is 101 bytes, larger than the limit of 100 bytes"):
        parse_statement_multipart(body_of(b"{}", (data, att_headers(sha256(data)))), CT, max_part_bytes=100)


def test_rejects_json_part_over_the_limit_with_413() -> None:
    with pytest.raises(PayloadTooLarge, match="part 1 is 12 bytes, larger than the limit of 10 bytes"):
        parse_statement_multipart(body_of(b'{"a": "bc"}' + b" "), CT, max_part_bytes=10)


# --------------------------------------------------------------------------------------------
# check_attachments
# --------------------------------------------------------------------------------------------


def text_part(content: bytes = TEXT, sha2: str | None = None) -> AttachmentPart:
    return AttachmentPart(sha2=sha2 or sha256(content), content_type="text/plain", content=content)


def test_matches_parts_to_attachments_and_allows_file_url_attachments_without_data() -> None:
    other = b"another attachment"
    stmts = [
        statement(
            attachment(TEXT_SHA),
            attachment(sha256(b"elsewhere"), file_url="http://example.com/f"),
        ),
        statement(attachment(sha256(other), file_url="http://example.com/other")),
    ]
    parts = [text_part(), text_part(other)]
    assert check_attachments(stmts, parts) == {
        TEXT_SHA: parts[0],
        sha256(other): parts[1],
    }


@pytest.mark.parametrize("algorithm", ["sha224", "sha256", "sha384", "sha512"])
def test_checks_every_sha2_length(algorithm: str) -> None:
    digest = hashlib.new(algorithm, TEXT).hexdigest()
    part = text_part(sha2=digest)
    assert hash_algorithm_for(digest) == algorithm
    assert check_attachments([statement(attachment(digest))], [part]) == {digest: part}


def test_hash_comparison_ignores_hex_case_and_keys_are_lowercase() -> None:
    part = text_part(sha2=TEXT_SHA.upper())
    result = check_attachments([statement(attachment(TEXT_SHA.upper()))], [part])
    assert list(result) == [TEXT_SHA]


def test_one_part_serves_several_statements_and_duplicates_are_kept_once() -> None:
    stmts = [statement(attachment(TEXT_SHA)), statement(attachment(TEXT_SHA))]
    result = check_attachments(stmts, [text_part(), text_part()])
    assert list(result) == [TEXT_SHA]


def test_substatement_attachments_need_their_data_too() -> None:
    sub = statement(attachment(TEXT_SHA))
    sub["objectType"] = "SubStatement"
    outer = statement()
    outer["object"] = sub
    assert list(check_attachments([outer], [text_part()])) == [TEXT_SHA]
    with pytest.raises(BadRequest, match=f"attachment with sha2 {TEXT_SHA} has no fileUrl"):
        check_attachments([outer], [])


def test_json_request_without_parts_needs_file_urls() -> None:
    assert check_attachments([statement(attachment(TEXT_SHA, file_url="http://x.example/a"))], []) == {}
    with pytest.raises(
        BadRequest,
        match=f"attachment with sha2 {TEXT_SHA} has no fileUrl and no multipart part",
    ):
        check_attachments([statement(attachment(TEXT_SHA))], [])


def test_rejects_missing_part_for_one_of_two_attachments() -> None:
    # Conformance XAPI-00129.
    missing = sha256(b"second")
    with pytest.raises(BadRequest, match=f"attachment with sha2 {missing} has no fileUrl"):
        check_attachments([statement(attachment(TEXT_SHA), attachment(missing))], [text_part()])


def test_rejects_excess_part_not_referenced_by_any_attachment() -> None:
    # Conformance XAPI-00128.
    extra = b"excess"
    with pytest.raises(
        BadRequest,
        match=f"part with X-Experience-API-Hash {sha256(extra)} is not referenced",
    ):
        check_attachments([statement(attachment(TEXT_SHA))], [text_part(), text_part(extra)])


@pytest.mark.parametrize("corrupt_first", [False, True])
def test_rejects_a_corrupt_second_copy_of_a_part_in_either_order(corrupt_first: bool) -> None:
    copies = [text_part(), text_part(b"CORRUPTED COPY", sha2=TEXT_SHA)]
    if corrupt_first:
        copies.reverse()
    with pytest.raises(BadRequest, match=f"X-Experience-API-Hash {TEXT_SHA} does not match that hash"):
        check_attachments([statement(attachment(TEXT_SHA))], copies)


def test_rejects_part_whose_data_does_not_match_its_hash() -> None:
    # Conformance XAPI-00132, second case: the header names a hash the data does not have.
    wrong = "b018994f8bbe0f08992a65c48c8c8c56f09e9baceaa6227ed85c90ae52b73c89"
    with pytest.raises(
        BadRequest,
        match=f"X-Experience-API-Hash {wrong} does not match that hash \\(its SHA256 is {TEXT_SHA}\\)",
    ):
        check_attachments([statement(attachment(TEXT_SHA))], [text_part(sha2=wrong)])


@pytest.mark.parametrize("bad", ["abc", "z" * 64, TEXT_SHA[:-1], TEXT_SHA + "0"])
def test_rejects_hash_that_is_not_a_sha2_hex_digest(bad: str) -> None:
    with pytest.raises(BadRequest, match=f"X-Experience-API-Hash {bad} is not a hex SHA-224, SHA-256"):
        check_attachments([statement(attachment(bad))], [text_part(sha2=bad)])


def test_parse_then_check_round_trip_of_conformance_style_request() -> None:
    stmt = statement(attachment(TEXT_SHA))
    body = body_of(json.dumps(stmt).encode(), (TEXT, att_headers(TEXT_SHA)))
    json_body, parts = parse_statement_multipart(body, CT, max_part_bytes=LIMIT)
    assert check_attachments([json.loads(json_body)], parts)[TEXT_SHA].content == TEXT


# --------------------------------------------------------------------------------------------
# build_multipart_mixed
# --------------------------------------------------------------------------------------------


def test_built_body_round_trips_through_the_parser() -> None:
    blob = bytes(range(256)) * 10
    parts = [
        text_part(),
        AttachmentPart(sha256(blob), "application/octet-stream", blob),
    ]
    json_body = json.dumps({"statements": [], "more": ""}).encode()
    body, content_type = build_multipart_mixed(json_body, parts)
    assert content_type.startswith("multipart/mixed; boundary=")
    parsed_json, parsed_parts = parse_statement_multipart(body, content_type, max_part_bytes=LIMIT)
    assert parsed_json == json_body
    assert parsed_parts == parts
    assert body.endswith(b"--\r\n")


def test_built_body_is_valid_rfc2046_for_the_stdlib_email_parser() -> None:
    body, content_type = build_multipart_mixed(b"{}", [text_part()])
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    first, second = message.iter_parts()
    assert first.get_content_type() == "application/json"
    assert second.get_content_type() == "text/plain"
    assert second["Content-Transfer-Encoding"] == "binary"
    assert second["X-Experience-API-Hash"] == TEXT_SHA
    assert message.defects == [] and first.defects == [] and second.defects == []


def test_built_body_includes_each_attachment_once_with_all_headers() -> None:
    json_body = json.dumps(
        {
            "statements": [
                statement(attachment(TEXT_SHA)),
                statement(attachment(TEXT_SHA)),
            ]
        }
    ).encode()
    body, _ = build_multipart_mixed(json_body, [text_part(), text_part()])
    # Conformance XAPI-00167 counts the hash: twice in the JSON, once as a part header.
    assert body.count(TEXT_SHA.encode()) == 3
    assert body.count(b"Content-Transfer-Encoding: binary\r\n") == 1
    assert f"X-Experience-API-Hash: {TEXT_SHA}\r\n\r\n".encode() + TEXT + b"\r\n--" in body


def test_boundaries_are_random_and_never_in_the_data() -> None:
    _, ct1 = build_multipart_mixed(b"{}", [])
    _, ct2 = build_multipart_mixed(b"{}", [])
    assert ct1 != ct2
    body, ct = build_multipart_mixed(b"{}", [text_part()])
    boundary = ct.split("boundary=", 1)[1].encode()
    assert body.count(boundary) == 3  # opening delimiter, one part delimiter, close delimiter


@pytest.mark.parametrize(
    "stored",
    ["text/plain\r\nX-Injected: 1", "text/plain\rX-Injected: 1", "text/plain;\x0bx", "text/plain; name=caf\u00e9"],
)
def test_a_content_type_no_header_can_hold_is_sent_as_octet_stream(stored: str) -> None:
    # Stored before the parser refused control characters (or non-ASCII text): one such part
    # must not make every attachments=true response carrying it fail, nor forge its headers.
    body, ct = build_multipart_mixed(b"{}", [AttachmentPart(TEXT_SHA, stored, TEXT)])
    assert b"X-Injected" not in body and b"\x0b" not in body and "\u00e9".encode() not in body
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ct}\r\n\r\n".encode() + body
    )
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/json", "application/octet-stream"]
    assert parts[1].get_payload(decode=True) == TEXT


def test_refuses_a_sha2_that_is_not_a_digest() -> None:
    with pytest.raises(ValueError, match="not a hex SHA-2 digest"):
        build_multipart_mixed(b"{}", [AttachmentPart(TEXT_SHA + "\r\nX: 1", "text/plain", TEXT)])


def test_declared_hashes_keep_the_statements_spelling() -> None:
    upper, lower = TEXT_SHA.upper(), sha256(b"other")
    statements = [
        {"attachments": [{"sha2": upper}, {"sha2": lower}]},
        {"attachments": [{"sha2": TEXT_SHA}, {"sha2": "not hex"}, {"sha2": 5}]},
    ]
    assert declared_hashes(statements) == {TEXT_SHA: upper, lower: lower}


def test_declared_content_types_by_hash_first_wins_substatements_included_line_breaks_left_out() -> None:
    a, b, c = "a" * 64, "B" * 64, "c" * 64
    statements = [
        {"attachments": [{"sha2": a, "contentType": "application/pdf"}, {"sha2": b, "contentType": " image/png "}]},
        {"attachments": [{"sha2": a, "contentType": "text/plain"}, {"sha2": c, "contentType": "text/plain\r\nX: 1"}],
         "object": {"objectType": "SubStatement", "attachments": [{"sha2": "d" * 64, "contentType": "text/csv"}]}},
        {"attachments": [{"sha2": "e" * 64, "contentType": "text/plain; name=\u00e9"},
                         {"sha2": "f" * 64, "contentType": "text/plain;\x0bX: y"}]},
    ]
    assert declared_content_types(statements) == {a: "application/pdf", b.lower(): "image/png", "d" * 64: "text/csv"}


def test_more_parts_than_a_request_may_have_is_413_and_as_many_are_taken() -> None:
    """Each part costs Python work on the event loop: 458,000 empty parts in 60 MB held it 4.4 s
    (a memory audit). At most MAX_PARTS: the statements and 10,000 attachments."""
    part = (b"", att_headers(sha256(b"")))
    js = json.dumps(statement(attachment(sha256(b"")))).encode()
    json_body, parts = parse_statement_multipart(body_of(js, *[part] * (MAX_PARTS - 1)), CT, max_part_bytes=LIMIT)
    assert len(parts) == MAX_PARTS - 1 and json_body == js
    with pytest.raises(PayloadTooLarge, match="more than 10,001 parts"):
        parse_statement_multipart(body_of(js, *[part] * MAX_PARTS), CT, max_part_bytes=LIMIT)


def test_the_parts_allowed_follow_the_largest_batch() -> None:
    """Two attachments for each statement of the largest batch, and the statements' part: a
    server configured for larger batches takes more parts."""
    assert parts_allowed(5000) == MAX_PARTS == 10_001
    part = (b"", att_headers(sha256(b"")))
    js = json.dumps(statement(attachment(sha256(b"")))).encode()
    _, parts = parse_statement_multipart(body_of(js, *[part] * 4), CT, max_part_bytes=LIMIT,
                                         max_parts=parts_allowed(2))
    assert len(parts) == 4
    with pytest.raises(PayloadTooLarge, match="more than 5 parts"):
        parse_statement_multipart(body_of(js, *[part] * 5), CT, max_part_bytes=LIMIT, max_parts=parts_allowed(2))
