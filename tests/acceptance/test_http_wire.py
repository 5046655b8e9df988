"""Responses on the wire, read from a raw socket: each response's head and body are whole, on
keep-alive connections and on HTTP/1.0 ones the server closes (lrs.http.protocol holds a head
back until its body and writes both at once; a close must not lose them)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest

from lrs.settings import Settings
from lrs.store.embedded import EmbeddedPostgres
from tests.conftest import Server, Tenant, make_tenant, server_of_its_own
from tests.statements import statement, with_id

# The request each test sends to see what a connection still serves.
ABOUT = b"GET /xapi/about HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 1.0.3\r\n\r\n"


async def _connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size + 2)
            body = body[:-2]
        await reader.readexactly(2)
    else:
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
    return status.encode(), headers, body


async def _answered_then_served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: bytes) -> None:
    """The answer to the request sent, on a connection kept open, then the answer to ABOUT sent
    after it on the same connection."""
    first, headers, _ = await _response(reader)
    second, _, about = await _response(reader)
    writer.close()
    assert first.startswith(status) and headers.get("connection") != "close"
    assert second.startswith(b"HTTP/1.1 200") and "1.0.3" in orjson.loads(about)["version"]


def _auth(tenant: Tenant) -> str:
    return "Basic " + base64.b64encode(f"{tenant.key}:{tenant.secret}".encode()).decode()


async def test_http_1_0_gets_the_whole_response_before_the_close(server: Server) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /xapi/about HTTP/1.0\r\nX-Experience-API-Version: 1.0.3\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert "1.0.3" in orjson.loads(body)["version"]


async def test_http_1_0_gets_a_streamed_export_without_chunks_ended_by_the_close(
        server: Server, tenant: Tenant) -> None:
    """HTTP/1.0 has no chunked coding (RFC 9112, 6.1): the CSV export, streamed with chunks to an
    HTTP/1.1 client, streams to an HTTP/1.0 one as the same bytes, its end the connection's
    close (RFC 9112, 6.3)."""
    path = "/api/v1/compliance?format=csv"
    reader, writer = await _connect(server)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth(tenant)}\r\n\r\n".encode())
    status, headers, streamed = await _response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 200") and headers.get("transfer-encoding") == "chunked"

    reader, writer = await _connect(server)
    writer.write(f"GET {path} HTTP/1.0\r\nAuthorization: {_auth(tenant)}\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0].startswith("http/1.1 200") and "connection: close" in lines
    assert not any(line.startswith(("transfer-encoding", "content-length")) for line in lines)
    assert body == streamed and body.startswith("\ufeffstore_id,".encode())


async def test_keep_alive_responses_come_whole_one_after_another(server: Server, tenant: Tenant) -> None:
    reader, writer = await _connect(server)
    auth = _auth(tenant)
    sent = with_id(statement())
    body = orjson.dumps(sent)
    requests = [
        ABOUT,
        (f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
         f"X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(body)}\r\n\r\n").encode() + body,
        (f"HEAD /xapi/statements?statementId={sent['id']} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
         "X-Experience-API-Version: 1.0.3\r\n\r\n").encode(),
        (f"GET /xapi/statements?statementId={sent['id']} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
         "X-Experience-API-Version: 1.0.3\r\n\r\n").encode(),
    ]
    answers = []
    for request in requests:
        writer.write(request)
        await writer.drain()
        if request.startswith(b"HEAD"):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # a HEAD has no body
            answers.append((head.split(b"\r\n")[0], {}, b""))
        else:
            answers.append(await _response(reader))
    writer.close()
    assert [a[0][:12] for a in answers] == [b"HTTP/1.1 200"] * 4
    assert orjson.loads(answers[1][2]) == [sent["id"]]
    assert orjson.loads(answers[3][2])["id"] == sent["id"]
    assert answers[0][1]["x-experience-api-version"] == "1.0.3"


async def test_a_client_that_half_closes_after_its_request_still_gets_the_response(server: Server) -> None:
    # (`printf 'GET ...' | nc -N host port`: the request, then shutdown(SHUT_WR); the event loop
    # closes the transport when the end of the input arrives, and the held response was lost)
    got = []
    for _ in range(10):
        reader, writer = await _connect(server)
        writer.write(ABOUT)
        await writer.drain()
        writer.write_eof()
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        got.append(raw.split(b"\r\n", 1)[0])
    assert got == [b"HTTP/1.1 200 OK"] * 10


async def test_a_request_refused_before_its_body_is_asked_for_closes_the_connection(
        server: Server, tenant: Tenant) -> None:
    # Expect: 100-continue, and 413 for a declared size, 401 or 400 answered before the body is
    # asked for: what the client sends next would be read as the rest of the body, so the
    # response says Connection: close and the server closes (the next request used to hang)
    auth = _auth(tenant)
    refused = [
        (f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Experience-API-Version: 1.0.3"
         "\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n", 413),
        ("POST /xapi/statements HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 1.0.3\r\nExpect: 100-continue"
         "\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n", 401),
        (f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Experience-API-Version: 0.9"
         "\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n", 400),
    ]
    for request, status in refused:
        reader, writer = await _connect(server)
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(f"HTTP/1.1 {status}".encode()), head
        assert b"\r\nconnection: close\r\n" in head.lower()
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()


async def test_a_refused_body_sent_unasked_is_read_past_and_the_connection_kept(server: Server, tenant: Tenant) -> None:
    # without Expect the client sends its body at once: the answer comes on the open connection
    # (closing it while the body still arrives would reset it and lose the answer), which then
    # serves the next request
    reader, writer = await _connect(server)
    body = b"x" * 300_000
    writer.write(b"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 1.0.3\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    writer.write(ABOUT)
    await writer.drain()
    await _answered_then_served(reader, writer, b"HTTP/1.1 401")


async def test_a_body_refused_after_100_continue_is_read_past_and_the_connection_kept(
        server: Server, tenant: Tenant) -> None:
    # asked with 100 Continue, the client sends its body: a 413 partway through (a document over
    # its limit, chunked) keeps the connection, which reads past the rest and serves the next one
    reader, writer = await _connect(server)
    query = ("activityId=https%3A%2F%2Fcourses.example.org%2Fa&stateId=s1"
             "&agent=%7B%22mbox%22%3A%22mailto%3Akari%40example.org%22%7D")
    writer.write((f"PUT /xapi/activities/state?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth(tenant)}\r\n"
                  "X-Experience-API-Version: 1.0.3\r\nContent-Type: application/octet-stream\r\n"
                  "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
    await writer.drain()
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
    chunk = b"x" * 1_000_000
    for _ in range(20):  # 20 MB, over the 16 MiB document limit
        writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n" + ABOUT)
    await writer.drain()
    await _answered_then_served(reader, writer, b"HTTP/1.1 413")


@pytest.fixture(scope="module")
def strict_server(pg: EmbeddedPostgres) -> Iterator[Server]:
    """A server with small request limits: an 8 KiB head, within 2 s, a body never idle 2 s, and
    a kept-alive connection idle at most 2 s."""
    with server_of_its_own(pg, {"SPOR_MAX_REQUEST_HEAD_BYTES": "8192", "SPOR_REQUEST_HEAD_SECONDS": "2",
                                "SPOR_REQUEST_BODY_IDLE_SECONDS": "2", "SPOR_KEEP_ALIVE_SECONDS": "2"}) as s:
        yield s


async def test_an_idle_connection_is_kept_for_spor_keep_alive_seconds(strict_server: Server) -> None:
    """SPOR_KEEP_ALIVE_SECONDS reaches uvicorn: a connection idle for less is served again, one
    idle for longer is closed. (Its default, 75, outlasts a proxy's pooled connections: with
    uvicorn's 5 a proxy's request on a connection being closed was lost.)"""
    reader, writer = await _connect(strict_server)
    about = b"GET /xapi/about HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write(about)
    assert (await _response(reader))[0].startswith(b"HTTP/1.1 200")
    await asyncio.sleep(1)
    writer.write(about)
    assert (await _response(reader))[0].startswith(b"HTTP/1.1 200")
    await asyncio.sleep(3.5)
    assert await asyncio.wait_for(reader.read(1), 1) == b""  # closed by the server already
    writer.close()
    assert Settings().keep_alive_seconds > 60


async def test_a_request_head_over_the_limit_is_431_and_closed_and_one_under_it_is_served(
        strict_server: Server) -> None:
    """A security audit streamed 100 MB of one header on 6 connections: the server buffered them
    all (68 -> 742 MB). The head is now bounded, whether it ever ends or not."""
    reader, writer = await _connect(strict_server)
    writer.write(b"GET /xapi/about HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"A" * 20_000)
    await writer.drain()
    status, headers, body = await _response(reader)
    assert status.startswith(b"HTTP/1.1 431") and headers["connection"] == "close" and b"8192" in body
    # an xAPI error like any other (Communication 3.3: the version header on every response)
    assert (headers["content-type"], headers["x-experience-api-version"]) == ("application/json", "2.0.0")
    assert orjson.loads(body) == {"error": {"status": 431, "message": "request line and headers exceed 8192 bytes"}}
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    # a whole head over the limit in one write (it completes inside one read)
    reader, writer = await _connect(strict_server)
    writer.write(ABOUT.replace(b"\r\n\r\n", b"\r\nX-Junk: " + b"A" * 20_000 + b"\r\n\r\n"))
    status, _, _ = await _response(reader)
    assert status.startswith(b"HTTP/1.1 431"), status
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    reader, writer = await _connect(strict_server)
    writer.write(ABOUT.replace(b"\r\n\r\n", b"\r\nX-Junk: " + b"A" * 6000 + b"\r\n\r\n"))
    status, _, _ = await _response(reader)
    assert status.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_a_head_over_the_limit_behind_pipelined_requests_waits_for_their_responses_and_ends_the_connection(
        strict_server: Server) -> None:
    """The requests before it get their own answers first, then the 431, and nothing after it
    is carried out (reviews: the 431 came alone, or in place of the second of two pipelined
    POSTs, whose statements were stored; and a DELETE behind it was carried out unanswered)."""
    tenant = await make_tenant(strict_server.database_url, strict_server.base_url)
    auth = _auth(tenant)
    statements = [with_id(statement()) for _ in range(2)]
    posts = b""
    for st in statements:
        body = orjson.dumps(st)
        posts += (f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Experience-API-Version: "
                  f"2.0.0\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    agent = orjson.dumps({"mbox": "mailto:kari@example.org"}).decode()
    doc = f"/xapi/activities/state?activityId=https%3A%2F%2Fx.example.org%2Fa&agent={quote(agent)}&stateId=s"
    put = (f"PUT {doc} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Experience-API-Version: 2.0.0\r\n"
           "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").encode()
    reader, writer = await _connect(strict_server)
    writer.write(put)
    assert (await _response(reader))[0].startswith(b"HTTP/1.1 204")
    delete = f"DELETE {doc} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Experience-API-Version: 2.0.0\r\n\r\n"
    writer.write(posts + b"GET /xapi/about HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"A" * 20_000 + b"\r\n\r\n"
                 + delete.encode())
    got = [(await _response(reader))[0] for _ in range(3)]
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert [g[:12] for g in got] == [b"HTTP/1.1 200", b"HTTP/1.1 200", b"HTTP/1.1 431"], got
    reader, writer = await _connect(strict_server)
    writer.write(f"GET {doc} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-Experience-API-Version: 2.0.0\r\n\r\n"
                 .encode())
    assert (await _response(reader))[0].startswith(b"HTTP/1.1 200")  # the DELETE behind the 431 was not done
    writer.close()


@pytest.mark.parametrize(("wire", "status"), [(8180, b"200"), (8200, b"431")])
@pytest.mark.parametrize("body_apart", [False, True])
async def test_the_head_limit_is_on_its_size_on_the_wire_however_it_arrives(
        strict_server: Server, wire: int, status: bytes, body_apart: bool) -> None:
    """A head of 8,180 or 8,200 bytes on the wire (limit 8,192), its body in the same write or
    after it, as a client awaiting 100 Continue sends it: the same answer both ways (a review:
    the head's parsed size left out the request line, so 8,200 was served with its body and a
    431 without)."""
    tenant = await make_tenant(strict_server.database_url, strict_server.base_url)
    body = orjson.dumps(with_id(statement()))
    head = (f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth(tenant)}\r\n"
            f"X-Experience-API-Version: 2.0.0\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n")
    padded = (head + "X-Pad: " + "p" * (wire - len(head) - len("X-Pad: \r\n\r\n")) + "\r\n\r\n").encode()
    assert len(padded) == wire
    reader, writer = await _connect(strict_server)
    if body_apart:
        writer.write(padded)
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(body)
    else:
        writer.write(padded + body)
    got, _, _ = await _response(reader)
    writer.close()
    assert got.startswith(b"HTTP/1.1 " + status), got


async def test_a_head_begun_in_the_read_that_ends_a_body_is_timed_too(strict_server: Server) -> None:
    """A request answered before its body was read (401 here), the rest of the body and the start
    of a next head in one write, then silence: the head timer starts at that head (a review: the
    keep-alive timer was cancelled by that read and none replaced it, so it was held forever)."""
    reader, writer = await _connect(strict_server)
    writer.write(b"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 2.0.0\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n12345")
    status, _, _ = await _response(reader)
    assert status.startswith(b"HTTP/1.1 401"), status
    writer.write(b"67890GET /xapi/about HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    began = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert asyncio.get_running_loop().time() - began < 6
    writer.close()


async def test_trailer_fields_over_the_head_limit_are_431(strict_server: Server) -> None:
    """A chunked body's trailer fields are held whole by the parser like headers (a review: 2 MB of
    one trailer was accepted): they count against the head's limit."""
    tenant = await make_tenant(strict_server.database_url, strict_server.base_url)
    reader, writer = await _connect(strict_server)
    writer.write(f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth(tenant)}\r\n"
                 "X-Experience-API-Version: 2.0.0\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
                 "\r\n\r\n".encode() + b"2\r\n[]\r\n0\r\nX-Trailer: " + b"A" * 30_000)
    status, _, _ = await _response(reader)
    assert status.startswith(b"HTTP/1.1 431"), status
    writer.close()


async def test_a_head_or_a_body_that_stops_arriving_is_closed_and_a_steady_one_is_served(
        strict_server: Server) -> None:
    """Slowloris: a head never finished, or a declared body trickling in, held a connection
    forever. A body sent in parts, each soon after the last, is still read whole."""
    tenant = await make_tenant(strict_server.database_url, strict_server.base_url)
    post = (f"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth(tenant)}\r\n"
            "X-Experience-API-Version: 2.0.0\r\nContent-Type: application/json\r\n")
    for start in (b"GET /xapi/about HTTP/1.1\r\nHost: x\r\n", post.encode() + b"Content-Length: 1000\r\n\r\n[{"):
        reader, writer = await _connect(strict_server)
        writer.write(start)
        await writer.drain()
        began = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 10) == b"", start  # closed, nothing sent
        assert asyncio.get_running_loop().time() - began < 6
        writer.close()
    s = orjson.dumps(with_id(statement()))
    reader, writer = await _connect(strict_server)
    writer.write(post.encode() + f"Content-Length: {len(s)}\r\n\r\n".encode())
    for i in range(0, len(s), len(s) // 8 + 1):  # a body in parts over ~3 s (more than a limit), 0.35 s apart
        await asyncio.sleep(0.35)
        writer.write(s[i:i + len(s) // 8 + 1])
        await writer.drain()
    status, _, _ = await _response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 200"), status


@pytest.mark.parametrize("head", [
    b"GET /xapi/about HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /xapi/statements HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "GET /xapi/activities?activityId=https://courses.example.org/kurs-ø HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    # no request line at all: these were 501, as if they named a method (a docs audit)
    b"hello world\r\n\r\n", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n", b"GET\r\n\r\n",
])
async def test_bytes_that_are_no_http_request_get_an_xapi_400(server: Server, head: bytes) -> None:
    """uvicorn answered them in plain text without X-Experience-API-Version (a robustness audit)."""
    reader, writer = await _connect(server)
    writer.write(head)
    await writer.drain()
    status, headers, body = await _response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 400"), status
    assert (headers["content-type"], headers["x-experience-api-version"]) == ("application/json", "2.0.0")
    assert orjson.loads(body)["error"]["message"].startswith("not a valid HTTP/1.1 request")


async def test_a_tls_handshake_on_the_plain_http_port_is_told_so(server: Server) -> None:
    """A client sending https:// to the http port got 501 "the request method is not one Spor
    implements" (a docs audit): a 400 saying what the port speaks."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="spor.example.org")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    reader, writer = await _connect(server)
    writer.write(outgoing.read())  # the ClientHello
    await writer.drain()
    status, headers, body = await _response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 400"), status
    assert headers["x-experience-api-version"] == "2.0.0"
    assert orjson.loads(body)["error"]["message"] == (
        "not a valid HTTP/1.1 request (a TLS handshake: this port speaks plain HTTP, http:// rather than https://)")


async def test_a_method_no_one_knows_is_501_and_a_known_one_no_route_takes_is_405(server: Server) -> None:
    """RFC 9110 15.6.2: a method the server does not recognise is 501 Not Implemented (uvicorn's
    parser answered 400, as for a malformed request); one it knows but the resource does not
    take is 405 with Allow (15.5.6)."""
    reader, writer = await _connect(server)
    writer.write(b"FOO /xapi/about HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 1.0.3\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 Not Implemented") and b"connection: close" in head.lower()
    # an xAPI error like the parser's other refusals: JSON, the version header, a Date
    assert b"x-experience-api-version: " in head.lower() and b"\r\ndate: " in head.lower()
    assert orjson.loads(body)["error"]["message"].startswith("the request method is not one Spor implements")

    reader, writer = await _connect(server)
    writer.write(b"PATCH /xapi/about HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 1.0.3\r\n\r\n" + ABOUT)
    status, headers, _ = await _response(reader)
    assert status.startswith(b"HTTP/1.1 405") and "GET" in headers["allow"]
    status, _, _ = await _response(reader)  # (the connection serves on)
    writer.close()
    assert status.startswith(b"HTTP/1.1 200")


async def test_a_transfer_coding_other_than_chunked_is_501_and_chunked_alone_is_served(
        server: Server, tenant: Tenant) -> None:
    """RFC 9112 6.1: a server that does not know a request's transfer coding answers 501. The
    parser framed "gzip, chunked" as chunked and handed the gzip bytes on as if they were the
    body (an audit); "Chunked" in any case, alone, is read as it always was."""
    s = orjson.dumps(with_id(statement()))
    post = ("POST /xapi/statements HTTP/1.1\r\nHost: x\r\nX-Experience-API-Version: 1.0.3\r\n"
            f"Authorization: {_auth(tenant)}\r\nContent-Type: application/json\r\n")
    chunked_body = f"{len(s):x}\r\n".encode() + s + b"\r\n0\r\n\r\n"
    for coding, named in [("gzip, chunked", "gzip"), ("x-spor;level=1 ,CHUNKED", "x-spor")]:
        reader, writer = await _connect(server)
        writer.write(post.encode() + f"Transfer-Encoding: {coding}\r\n\r\n".encode() + chunked_body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)  # until the server closes
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 501 Not Implemented") and b"connection: close" in head.lower()
        assert b"x-experience-api-version: " in head.lower()
        assert orjson.loads(body)["error"]["message"] == (f"Transfer-Encoding {named} is not supported "
                                                          "(only chunked is)")
    reader, writer = await _connect(server)
    writer.write(post.encode() + b"Transfer-Encoding: Chunked\r\n\r\n" + chunked_body + ABOUT)
    await _answered_then_served(reader, writer, b"HTTP/1.1 200")


@pytest.mark.parametrize(("coding", "status"), [("gzip, chunked", b"501"), ("gzip", b"400"), (None, b"400")])
async def test_a_refused_request_pipelined_behind_another_is_answered_after_it(
        server: Server, coding: str | None, status: bytes) -> None:
    """Answered at once, the refusal's close cut off the response to the request before it on the
    connection (a review: GET /about, then a POST with Transfer-Encoding: gzip, got the 400 alone).
    A coding that is not chunked at the end is 400 (RFC 9112 6.3: the length cannot be known);
    bytes that are no request (None) likewise wait for the answers before them."""
    bad = (b"POST /xapi/about HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding.encode() + b"\r\n\r\n"
           if coding is not None else b"GET /xapi/about HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    reader, writer = await _connect(server)
    writer.write(ABOUT + bad + b"0\r\n\r\n")
    await writer.drain()
    first, _, about = await _response(reader)
    second, headers, body = await _response(reader)
    writer.close()
    assert first.startswith(b"HTTP/1.1 200") and "1.0.3" in orjson.loads(about)["version"]
    assert second.startswith(b"HTTP/1.1 " + status), second
    assert headers["connection"] == "close" and orjson.loads(body)["error"]["status"] == int(status)
