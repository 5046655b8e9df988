"""Ingest and query benchmark: a real ``spor serve`` on a fresh, durable embedded PostgreSQL.

One run measures, against a baseline taken in the same run on the same cluster:

(a) baseline  raw asyncpg COPY (``copy_records_to_table``) of the same ~1.5 KB statements into a
              bare table (id uuid primary key, stored timestamptz, payload jsonb), rows/s;
(b) batches   POST /xapi/statements, 100 statements per request, 8 concurrent clients;
(c) singles   POST /xapi/statements, one statement per request, 32 concurrent clients;
(d) queries   GET /xapi/statements by agent, by registration and by activity with
              related_activities=true on a store holding N statements: p50/p95/p99 latency;
(e) memory    peak RSS (VmHWM) of the server, summed over its processes (``--workers``).

The load generators run in separate processes (``--client-procs``) with a minimal keep-alive
HTTP/1.1 client on asyncio streams (``--client raw``, default) so the Python client costs as
little CPU as possible on a small machine; ``--client httpx`` uses httpx.AsyncClient instead.
The CPU seconds spent by the clients, the server and PostgreSQL in each phase are printed, so
it is visible when the load generator (sharing the machine) is what limits a figure.

    python -m bench.ingest                             # default: N = 1,000,000 for (d), as issue 2 asks
    python -m bench.ingest --statements-query 200000   # a smaller query store, quicker
    python -m bench.ingest --big                       # N = 10,000,000 (hours on 2 cores)
    python -m bench.ingest --py-spy /path/to/py-spy    # also profile the server during (b), (c)

Only 127.0.0.1 is used. Every loop is bounded by a count and a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import multiprocessing as mp
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lrs.ops import bootstrap  # noqa: E402
from lrs.store.credentials import PgCredentialRepository  # noqa: E402
from lrs.store.embedded import EmbeddedPostgres, free_port  # noqa: E402
from lrs.store.migrate import migrate  # noqa: E402

HOST = "127.0.0.1"
DATABASE = "spor"
XAPI_VERSION = "1.0.3"

TARGETS = {
    "batch": 10_000.0,  # statements/s
    "single": 1_500.0,  # statements/s
    "agent": 20.0,  # p95 ms
    "registration": 20.0,
    "activity": 50.0,
    "rss": 300.0,  # MB
}

# ---------------------------------------------------------------------------------------------
# Realistic statements: people, courses of modules, programmes, registrations per person/course

NS = uuid.UUID("5e0b7a39-4c55-4b8e-9a53-3f0f6c1d2e11")
HOMEPAGE = "https://id.helse-sorost.no"
KURS = "https://kurs.helse-sorost.no"
VERBS: list[tuple[str, str, str, float]] = [
    # id, en-US display, nb-NO display, weight
    ("http://adlnet.gov/expapi/verbs/launched", "launched", "startet", 0.10),
    ("http://adlnet.gov/expapi/verbs/initialized", "initialized", "initialisert", 0.10),
    ("http://adlnet.gov/expapi/verbs/progressed", "progressed", "fortsatte", 0.25),
    ("http://adlnet.gov/expapi/verbs/experienced", "experienced", "opplevde", 0.15),
    ("http://adlnet.gov/expapi/verbs/completed", "completed", "fullførte", 0.14),
    ("http://adlnet.gov/expapi/verbs/passed", "passed", "bestod", 0.10),
    ("http://adlnet.gov/expapi/verbs/failed", "failed", "strøk", 0.04),
    ("http://adlnet.gov/expapi/verbs/terminated", "terminated", "avsluttet", 0.12),
]
TOPICS = ["HLR", "Smittevern", "Legemiddelhåndtering", "Personvern", "Brannvern", "Journalføring",
          "Ernæring", "Sårbehandling", "Akuttmedisin", "Kommunikasjon"]


@dataclass(frozen=True)
class Population:
    """The shape of the data: ~80,000 people, 2,000 activities (100 courses of 19 modules each,
    plus the courses themselves), 10 programmes, 500 instructors, one registration per
    person/course. People and courses are drawn with a skew (a few mandatory courses and very
    active people dominate), as in a hospital trust's real training records."""

    people: int = 80_000
    courses: int = 100
    modules_per_course: int = 19
    programmes: int = 10
    instructors: int = 500

    @property
    def activities(self) -> int:
        return self.courses * (self.modules_per_course + 1)

    def course_weights(self) -> list[float]:
        # Zipf-like: course k has weight 1/(k+1)^0.8, cumulative for bisect.
        acc, out = 0.0, []
        for k in range(self.courses):
            acc += 1.0 / (k + 1) ** 0.8
            out.append(acc)
        return out


def agent(person: int) -> dict[str, Any]:
    return {"objectType": "Agent", "name": f"Ansatt {person:06d}",
            "account": {"homePage": HOMEPAGE, "name": f"hso-{person:06d}"}}


def course_id(course: int) -> str:
    return f"{KURS}/activities/kurs-{course:03d}"


def module_id(course: int, module: int) -> str:
    return f"{KURS}/activities/kurs-{course:03d}/modul-{module:02d}"


def registration(person: int, course: int) -> str:
    return str(uuid.uuid5(NS, f"{person}/{course}"))


class Generator:
    """Deterministic statements for one seed."""

    def __init__(self, pop: Population, seed: int) -> None:
        self.pop = pop
        self.rng = random.Random(seed)
        self.cum_course = pop.course_weights()
        self.cum_verbs = list(_accumulate([w for *_, w in VERBS]))
        self.base = 1_700_000_000 + seed * 1000
        self.n = 0

    def pick(self) -> tuple[int, int, int]:
        r = self.rng
        person = min(int(self.pop.people * r.random() ** 1.6), self.pop.people - 1)
        course = bisect.bisect(self.cum_course, r.random() * self.cum_course[-1])
        module = r.randrange(self.pop.modules_per_course)
        return person, min(course, self.pop.courses - 1), module

    def statement(self) -> dict[str, Any]:
        r = self.rng
        person, course, module = self.pick()
        self.n += 1
        vid, en, nb, _ = VERBS[min(bisect.bisect(self.cum_verbs, r.random() * self.cum_verbs[-1]), len(VERBS) - 1)]
        topic = TOPICS[course % len(TOPICS)]
        raw = r.randint(40, 100)
        ts = self.base + self.n * 7 + r.randint(0, 6)
        return {
            "id": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "actor": agent(person),
            "verb": {"id": vid, "display": {"en-US": en, "nb-NO": nb}},
            "object": {
                "objectType": "Activity",
                "id": module_id(course, module),
                "definition": {
                    "type": "http://adlnet.gov/expapi/activities/module",
                    "name": {"en-US": f"{topic} course {course}, module {module}",
                             "nb-NO": f"{topic} kurs {course}, modul {module}"},
                    "description": {"en-US": f"Module {module} of the {topic} course for clinical staff",
                                    "nb-NO": f"Modul {module} i {topic}-kurset for klinisk personell"},
                    "extensions": {f"{KURS}/xapi/ext/estimated-minutes": 5 + module},
                },
            },
            "result": {
                "score": {"scaled": raw / 100, "raw": raw, "min": 0, "max": 100},
                "success": raw >= 60,
                "completion": True,
                "duration": f"PT{r.randint(1, 59)}M{r.randint(0, 59)}.{r.randint(0, 9)}S",
                "extensions": {f"{KURS}/xapi/ext/attempt": r.randint(1, 3)},
            },
            "context": {
                "registration": registration(person, course),
                "instructor": {"objectType": "Agent", "name": f"Instruktør {person % self.pop.instructors}",
                               "mbox": f"mailto:instruktor{person % self.pop.instructors}@helse-sorost.no"},
                "contextActivities": {
                    "parent": [{"objectType": "Activity", "id": course_id(course)}],
                    "grouping": [{"objectType": "Activity",
                                  "id": f"{KURS}/programmes/prog-{course % self.pop.programmes:02d}"}],
                    "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/moveon"}],
                },
                "platform": "Kursbyggeren 4.2",
                "language": "nb-NO",
                "extensions": {
                    "https://w3id.org/xapi/cmi5/context/extensions/sessionid": str(uuid.UUID(int=r.getrandbits(128),
                                                                                               version=4)),
                    f"{KURS}/xapi/ext/org-unit": f"HSO/OUS/enhet-{person % 400:03d}",
                },
            },
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000Z",
        }


def _accumulate(ws: list[float]) -> list[float]:
    acc, out = 0.0, []
    for w in ws:
        acc += w
        out.append(acc)
    return out


# ---------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client (the cheapest Python client we can write)


class RawClient:
    """One keep-alive connection; requests are pre-built bytes. Understands Content-Length and
    chunked responses, nothing else (enough for uvicorn)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=1 << 22)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        i = lower.find(b"\r\ncontent-length:")
        if i >= 0:
            j = lower.index(b"\r\n", i + 2)
            body = await self.reader.readexactly(int(lower[i + 17 : j]))
        elif b"transfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = b""
        if b"\r\nconnection: close" in lower:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def _auth(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def post_request(port: int, auth: str, body: bytes) -> bytes:
    return (
        f"POST /xapi/statements HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: {auth}\r\n"
        f"X-Experience-API-Version: {XAPI_VERSION}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get_request(port: int, auth: str, query: str) -> bytes:
    return (
        f"GET /xapi/statements?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: {auth}\r\n"
        f"X-Experience-API-Version: {XAPI_VERSION}\r\n\r\n"
    ).encode()


# ---------------------------------------------------------------------------------------------
# Load-generator processes


@dataclass
class WorkerJob:
    port: int
    key: str
    secret: str
    seed: int
    statements: int  # how many this worker sends at most
    batch: int  # statements per request
    connections: int  # concurrent keep-alive connections in this worker
    seconds: float  # time limit once started
    client: str  # raw | httpx
    pop: Population = field(default_factory=Population)
    # build every request before the clock starts (the timed phases); False: as it is sent (the
    # (d) load: 10,000,000 statements built first would take ~30 GB)
    prebuild: bool = True


@dataclass
class WorkerResult:
    sent: int = 0
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    cpu: float = 0.0  # CPU seconds of this worker during the timed part


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_worker(job: WorkerJob, barrier: Any, out: Any) -> None:
    """Entry point of a load-generator process: build bodies, wait at the barrier, send."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    gen = Generator(job.pop, job.seed)
    auth = _auth(job.key, job.secret)
    count = -(-job.statements // job.batch)
    sizes = [min(job.batch, job.statements - i * job.batch) for i in range(count)]

    def build(i: int) -> tuple[bytes, bytes]:
        stmts = [gen.statement() for _ in range(sizes[i])]
        body = orjson.dumps(stmts if job.batch > 1 else stmts[0])
        return body, post_request(job.port, auth, body) if job.client == "raw" else b""

    built = [build(i) for i in range(count)] if job.prebuild else []
    barrier.wait(timeout=600)
    res = WorkerResult()
    res.cpu = -_cpu_self()
    res.started = time.time()
    asyncio.run(_send(job, (lambda i: built[i]) if job.prebuild else build, count, sizes, auth, res))
    res.finished = time.time()
    res.cpu += _cpu_self()
    out.put(res)


async def _send(job: WorkerJob, request: Callable[[int], tuple[bytes, bytes]], count: int, sizes: list[int],
                auth: str, res: WorkerResult) -> None:
    """Send requests 0..count-1 (``request(i)``: the body and, for the raw client, the whole
    request) over ``job.connections`` connections until done or out of time."""
    deadline = time.monotonic() + job.seconds
    next_index = 0

    def take() -> int | None:
        nonlocal next_index
        if next_index >= count or time.monotonic() >= deadline:
            return None
        next_index += 1
        return next_index - 1

    def record(i: int, status: int, body: bytes, t0: float) -> None:
        res.latencies.append(time.perf_counter() - t0)
        res.requests += 1
        if status == 200:
            res.sent += sizes[i]
        else:
            res.errors += 1
            if not res.first_error:
                res.first_error = f"{status}: {body[:300]!r}"

    async def raw_loop() -> None:
        c = RawClient(job.port)
        try:
            while (i := take()) is not None:
                raw = request(i)[1]
                t0 = time.perf_counter()
                status, body = await c.request(raw)
                record(i, status, body, t0)
        finally:
            await c.close()

    async def httpx_loop(client: Any) -> None:
        headers = {"Authorization": auth, "X-Experience-API-Version": XAPI_VERSION,
                   "Content-Type": "application/json"}
        while (i := take()) is not None:
            content = request(i)[0]
            t0 = time.perf_counter()
            r = await client.post("/xapi/statements", content=content, headers=headers)
            record(i, r.status_code, r.content, t0)

    if job.client == "raw":
        await asyncio.gather(*(raw_loop() for _ in range(job.connections)))
    else:
        import httpx

        limits = httpx.Limits(max_connections=job.connections, max_keepalive_connections=job.connections)
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{job.port}", limits=limits, timeout=120) as client:
            await asyncio.gather(*(httpx_loop(client) for _ in range(job.connections)))


# ---------------------------------------------------------------------------------------------
# Process accounting: CPU of the server and of PostgreSQL, peak RSS, wait-event sampling

CLK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (plus its reaped children's when ``children``)."""
    try:
        f = _stat(pid)
    except OSError:
        return 0.0
    # fields after the comm: state=0 ... utime=11 stime=12 cutime=13 cstime=14
    t = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return t / CLK


def tree_cpu(parent: int) -> float:
    """CPU seconds of a process and its children, live and exited (accounted to the parent once
    reaped): the whole PostgreSQL cluster, or the server with its ``--workers``."""
    return proc_cpu(parent, children=True) + sum(proc_cpu(child) for child in children(parent))


def machine_busy() -> float:
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return (user + nice + system + irq + softirq + steal) / CLK


def children(parent: int) -> list[int]:
    """Live child processes of ``parent``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                if int(_stat(int(d))[1]) == parent:
                    out.append(int(d))
    return out


def status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


class WaitSampler:
    """Samples pg_stat_activity of the server's connections (state and wait event) while a phase
    runs, to show where the database side spends its time (advisory-lock waits, WAL flushes,
    waiting for the server to send the next command inside a transaction, ...)."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url = url
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = False

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            me = conn.get_server_pid()
            end = time.monotonic() + 900
            while not self._stop and time.monotonic() < end:
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> $2 AND backend_type = 'client backend'", DATABASE, me)
                self.samples += 1
                for r in rows:
                    if r["state"] == "idle":
                        continue
                    ev = f"{r['wait_event_type']}:{r['wait_event']}" if r["wait_event_type"] else "CPU"
                    self.counts[f"{r['state']} / {ev}"] += 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            await self._task

    def report(self, top: int = 8) -> list[str]:
        if not self.samples:
            return []
        return [f"      {n / self.samples:5.2f} backends  {k}" for k, n in self.counts.most_common(top)]


# ---------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Env:
    tmp: Path
    pg: EmbeddedPostgres
    admin_url: str
    db_url: str
    postmaster: int
    server: subprocess.Popen[bytes] | None = None
    port: int = 0
    server_log: Path | None = None
    creds: dict[str, tuple[str, str]] = field(default_factory=dict)
    pg_stats: bool = False


async def _jsonb(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=lambda v: v if isinstance(v, str) else orjson.dumps(v).decode(),
                              decoder=orjson.loads, schema="pg_catalog")


async def prepare_database(env: Env, stores: list[str]) -> None:
    conn = await asyncpg.connect(env.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(env.db_url)
    try:
        await migrate(conn)
        if env.pg_stats:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await _jsonb(conn)
        repo = PgCredentialRepository(conn)
        for name in stores:
            await repo.create_store(name, "Benchmark HF")
            c = await bootstrap.create_credential(repo, name, label="bench", public_url=f"http://{HOST}")
            env.creds[name] = (c.key, c.secret)
    finally:
        await conn.close()


def start_server(env: Env, args: argparse.Namespace) -> None:
    env.port = free_port()
    env.server_log = env.tmp / "server.log"
    cmd = [sys.executable]
    if args.server_cprofile:
        cmd += ["-m", "cProfile", "-o", str(Path(args.server_cprofile).resolve())]
    cmd += ["-m", "lrs.cli", "serve", "--workers", str(args.server_workers)]
    full_env = {**os.environ, "SPOR_DATABASE_URL": env.db_url, "SPOR_PORT": str(env.port), "SPOR_HOST": HOST,
                "SPOR_LOG_FORMAT": "json", "SPOR_LOG_LEVEL": args.server_log_level,
                # measure capacity, not the per-credential rate-limit policy (default 2,000/s)
                "SPOR_RATE_LIMIT_PER_SECOND": "1000000", "SPOR_RATE_LIMIT_BURST": "1000000"}
    with env.server_log.open("wb") as out:
        env.server = subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if env.server.poll() is not None:
            raise RuntimeError(f"spor serve exited early:\n{env.server_log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
            status, _ = asyncio.run(_one(env.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
            if status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("spor serve did not become healthy")


async def _one(port: int, data: bytes) -> tuple[int, bytes]:
    c = RawClient(port)
    try:
        return await c.request(data)
    finally:
        await c.close()


def stop_server(env: Env) -> None:
    if env.server is None:
        return
    env.server.terminate()
    try:
        env.server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        env.server.kill()
        env.server.wait(timeout=10)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


# (a) ------------------------------------------------------------------------------------------


async def baseline(env: Env, rows: int, chunk: int, writers: int) -> dict[str, float]:
    """COPY pre-serialised statements into a bare table; each chunk is one durable commit."""
    pop = Population()
    per = rows // writers
    data: list[list[tuple[uuid.UUID, str]]] = []
    for w in range(writers):
        gen = Generator(pop, 10_000 + w)
        recs = []
        for _ in range(per):
            s = gen.statement()
            recs.append((uuid.UUID(s["id"]), orjson.dumps(s).decode()))
        data.append(recs)
    avg = statistics.mean(len(r[1]) for r in data[0][:1000])
    conn = await asyncpg.connect(env.db_url)
    await conn.execute("CREATE TABLE bench_baseline (id uuid PRIMARY KEY, stored timestamptz NOT NULL, "
                       "payload jsonb NOT NULL)")
    await conn.close()

    async def writer(recs: list[tuple[uuid.UUID, str]]) -> None:
        c = await asyncpg.connect(env.db_url)
        try:
            for i in range(0, len(recs), chunk):
                stamp = datetime.now(UTC)
                await c.copy_records_to_table("bench_baseline", columns=["id", "stored", "payload"],
                                              records=[(r[0], stamp, r[1]) for r in recs[i : i + chunk]])
        finally:
            await c.close()

    pg0 = tree_cpu(env.postmaster)
    t0 = time.perf_counter()
    await asyncio.gather(*(writer(d) for d in data))
    wall = time.perf_counter() - t0
    pg_cpu = tree_cpu(env.postmaster) - pg0
    c = await asyncpg.connect(env.db_url)
    n = await c.fetchval("SELECT count(*) FROM bench_baseline")
    await c.execute("DROP TABLE bench_baseline")
    await c.close()
    return {"rows": float(n), "wall": wall, "rate": n / wall, "pg_cpu": pg_cpu, "avg_bytes": avg}


# (b), (c) and the load of (d) ------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    statements: int
    requests: int
    errors: int
    first_error: str
    wall: float
    rate: float
    p50: float
    p95: float
    p99: float
    client_cpu: float
    server_cpu: float
    pg_cpu: float
    other_cpu: float  # everything else on the machine (other users' processes, this script)
    waits: list[str]
    profile: list[str]


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run_phase(env: Env, args: argparse.Namespace, name: str, store: str, *, statements: int, batch: int,
              clients: int, seconds: float, seed: int, sample_waits: bool = True,
              profile: bool = False, prebuild: bool = True) -> PhaseResult:
    """Send ``statements`` (at most, for at most ``seconds``) from ``args.client_procs`` processes
    holding ``clients`` connections in total."""
    assert env.server is not None
    procs_n = max(1, min(args.client_procs, clients))
    key, secret = env.creds[store]
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs_n + 1)
    out: Any = ctx.Queue()
    procs = []
    for i in range(procs_n):
        conns = clients // procs_n + (1 if i < clients % procs_n else 0)
        share = statements // procs_n
        job = WorkerJob(env.port, key, secret, seed * 100 + i, share, batch, conns, seconds, args.client,
                        prebuild=prebuild)
        p = ctx.Process(target=run_worker, args=(job, barrier, out), daemon=True)
        p.start()
        procs.append(p)
    if env.pg_stats:
        asyncio.run(_execute(env, "SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal')"))
    barrier.wait(timeout=900)
    spy = None
    spy_out = env.tmp / f"py-spy-{name}.txt"
    if profile and args.py_spy:
        spy = subprocess.Popen([args.py_spy, "record", "-p", str(env.server.pid), "-r", "250", "-f", "raw",
                                "-d", str(int(seconds) + 5), "-o", str(spy_out), "--nonblocking", "--subprocesses"]
                               + (["--native"] if args.py_spy_native else []),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s0 = tree_cpu(env.server.pid)
    pg0 = tree_cpu(env.postmaster)
    m0 = machine_busy()

    async def wait_all() -> tuple[list[WorkerResult], list[str]]:
        sampler = WaitSampler(env.db_url) if sample_waits else None
        if sampler:
            sampler.start()
        loop = asyncio.get_running_loop()
        results = [await loop.run_in_executor(None, out.get, True, seconds + 600) for _ in procs]
        if sampler:
            await sampler.stop()
        return results, sampler.report() if sampler else []

    results, waits = asyncio.run(wait_all())
    server_cpu = tree_cpu(env.server.pid) - s0
    pg_cpu = tree_cpu(env.postmaster) - pg0
    machine = machine_busy() - m0
    for p in procs:
        p.join(timeout=30)
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
    start = min(r.started for r in results)
    end = max(r.finished for r in results)
    wall = max(end - start, 1e-9)
    lat = [x for r in results for x in r.latencies]
    sent = sum(r.sent for r in results)
    client_cpu = sum(r.cpu for r in results)
    return PhaseResult(
        name=name, statements=sent, requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results), first_error=next((r.first_error for r in results if r.first_error), ""),
        wall=wall, rate=sent / wall, p50=pct(lat, 50) * 1000, p95=pct(lat, 95) * 1000, p99=pct(lat, 99) * 1000,
        client_cpu=client_cpu, server_cpu=server_cpu, pg_cpu=pg_cpu,
        other_cpu=max(0.0, machine - server_cpu - pg_cpu - client_cpu), waits=waits,
        profile=(summarise_py_spy(spy_out) if spy is not None else [])
        + (asyncio.run(_pg_stats_top(env, wall, sent)) if env.pg_stats else []),
    )


def summarise_py_spy(path: Path, top: int = 22) -> list[str]:
    """Self and inclusive time per function from py-spy's raw (collapsed-stack) output."""
    if not path.exists():
        return ["      (py-spy wrote no profile; is ptrace allowed?)"]
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [_short(f) for f in stack.split(";") if f]
        if frames:
            self_t[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return ["      (empty profile)"]
    lines = [f"      py-spy: {total} samples of the server (250/s, idle excluded); top self time:"]
    lines += [f"        {n / total * 100:5.1f}%  {f}" for f, n in self_t.most_common(top)]
    lines.append("      top inclusive time (lrs/, statements_schema/, starlette, asyncpg, uvicorn frames):")
    keep = ("lrs/", "statements_schema/", "starlette/", "asyncpg/", "uvicorn/", "structlog/", "orjson", "jsonschema")
    shown = [(f, n) for f, n in incl.most_common(400) if any(k in f for k in keep)][: top + 10]
    lines += [f"        {n / total * 100:5.1f}%  {f}" for f, n in shown]
    return lines


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (lib/file.py:123)" relative to site-packages or the repo
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


# (d) --------------------------------------------------------------------------------------------


@dataclass
class QueryResult:
    kind: str
    n: int
    errors: int
    rows_mean: float
    bytes_mean: float
    p50: float
    p95: float
    p99: float


def query_targets(pop: Population, seeds: list[int], per_seed: int, count: int, rng: random.Random,
                  ) -> dict[str, list[str]]:
    """Query strings whose subjects are known to be in the store: regenerate the first statements
    of the loaders' seeds and take their agents, registrations and activities."""
    seen: list[dict[str, Any]] = []
    for s in seeds:
        g = Generator(pop, s)
        seen += [g.statement() for _ in range(min(per_seed, 4000))]
    rng.shuffle(seen)
    picks = seen[:count]
    q = urllib.parse.quote

    def agent_q(s: dict[str, Any]) -> str:
        return "agent=" + q(orjson.dumps({"objectType": "Agent", "account": s["actor"]["account"]}).decode())

    out = {
        "agent": [agent_q(s) for s in picks],
        "registration": ["registration=" + s["context"]["registration"] for s in picks],
        "activity (module), related": ["activity=" + q(s["object"]["id"]) + "&related_activities=true"
                                       for s in picks],
        "activity (course), related, limit=100": [
            "activity=" + q(s["context"]["contextActivities"]["parent"][0]["id"]) + "&related_activities=true&limit=100"
            for s in picks],
        "activity (course), related, no limit (server max)": [
            "activity=" + q(s["context"]["contextActivities"]["parent"][0]["id"]) + "&related_activities=true"
            for s in picks],
    }
    return out


async def run_queries(env: Env, store: str, targets: dict[str, list[str]], seconds: float,
                      ) -> list[QueryResult]:
    key, secret = env.creds[store]
    auth = _auth(key, secret)
    c = RawClient(env.port)
    results = []
    try:
        for kind, queries in targets.items():
            for qs in queries[:5]:  # warm-up: connection, plans, the server's first-use paths
                await c.request(get_request(env.port, auth, qs))
            lat: list[float] = []
            rows: list[int] = []
            sizes: list[int] = []
            errors = 0
            end = time.monotonic() + seconds
            for qs in queries[5:]:
                if time.monotonic() > end:
                    break
                t0 = time.perf_counter()
                status, body = await c.request(get_request(env.port, auth, qs))
                lat.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
                    continue
                sizes.append(len(body))
                rows.append(len(orjson.loads(body)["statements"]))
            results.append(QueryResult(kind, len(lat), errors, statistics.mean(rows) if rows else 0.0,
                                       statistics.mean(sizes) if sizes else 0.0,
                                       pct(lat, 50) * 1000, pct(lat, 95) * 1000, pct(lat, 99) * 1000))
    finally:
        await c.close()
    return results


async def _execute(env: Env, statements: str) -> None:
    """Run SQL on a connection of its own (as the owner, outside the server)."""
    c = await asyncpg.connect(env.db_url)
    try:
        await c.execute(statements)
    finally:
        await c.close()


async def _pg_stats_top(env: Env, wall: float, statements: int, top: int = 10) -> list[str]:
    """The statements the server ran in the phase, by total execution time (lock waits included),
    and the write-ahead log it wrote per statement (full-page images are the first change of a
    page after a checkpoint)."""
    c = await asyncpg.connect(env.db_url)
    try:
        wal = await c.fetchrow("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
        rows = await c.fetch(
            "SELECT calls, total_exec_time AS t, mean_exec_time AS m, "
            "       regexp_replace(query, '\\s+', ' ', 'g') AS q "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) "
            "ORDER BY total_exec_time DESC LIMIT 100", DATABASE)
    finally:
        await c.close()
    n = max(statements, 1)
    out = [f"      write-ahead log per statement: {wal['wal_bytes'] / n:,.0f} B in "
           f"{wal['wal_records'] / n:.1f} records, {wal['wal_fpi'] / n:.2f} full-page images",
           "      pg_stat_statements (execution time in PostgreSQL; ms per second of the phase, calls, mean):"]
    out += [f"        {r['t'] / wall:7.1f} ms/s {r['calls']:>8,} calls {r['m']:8.3f} ms  {r['q'][:110]}"
            for r in rows[:top]]
    return out + _ticket_section(rows, statements)


def _ticket_section(rows: list[asyncpg.Record], statements: int) -> list[str]:
    """What the common append spent waiting for the appends of the same store (migration 0039:
    appends write side by side and commit in ticket order). Per call: the wait for earlier
    tickets, the update of the store's row (which waits for the commit of the ticket before),
    and the definitions merged after it, in ticket order (with the commit flush, not counted
    here, that is the part of an append no other append of the store can overlap)."""
    call = next((r for r in rows if "spor_append_group(" in r["q"]), None)
    if call is None or not call["calls"]:
        return []

    def per_call(fragment: str) -> float:
        row = next((r for r in rows if fragment in r["q"] and "spor_append_group(" not in r["q"]), None)
        return row["t"] / call["calls"] if row is not None else 0.0

    waits = per_call("spor_await_tickets(")
    update = per_call("UPDATE stores SET last_position = v_last")
    merge = per_call("spor_merge_definitions(p_store")
    n = statements / call["calls"]
    return [f"      per call of ~{n:.0f} statements ({call['t'] / call['calls']:.1f} ms in all): waiting for earlier "
            f"tickets {waits:.1f} ms, the store's row (waits for the commit before) {update:.1f} ms, definitions "
            f"in ticket order {merge:.1f} ms ({merge / n * 1000:.0f} us a statement)"]


async def table_sizes(env: Env) -> list[str]:
    c = await asyncpg.connect(env.db_url)
    try:
        rows = await c.fetch(
            "SELECT relname, pg_total_relation_size(oid) AS b, reltuples::bigint AS n FROM pg_class "
            "WHERE relname IN ('events', 'statements', 'statement_term_runs') ORDER BY relname")
        return [f"{r['relname']}: {r['b'] / 2**20:,.0f} MB (~{r['n']:,} rows)" for r in rows]
    finally:
        await c.close()


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--statements-query", type=int, default=1_000_000,
                   help="N: statements in the query store for (d) (default 1,000,000; --big = 10,000,000)")
    p.add_argument("--big", action="store_true", help="N = 10,000,000")
    p.add_argument("--baseline-rows", type=int, default=200_000)
    p.add_argument("--baseline-writers", type=int, default=2, help="concurrent COPY connections in (a)")
    p.add_argument("--batch-statements", type=int, default=150_000, help="at most this many statements in (b)")
    p.add_argument("--single-statements", type=int, default=60_000, help="at most this many statements in (c)")
    p.add_argument("--batch-clients", type=int, default=8, help="concurrent clients in (b)")
    p.add_argument("--single-clients", type=int, default=32, help="concurrent clients in (c)")
    p.add_argument("--seconds", type=float, default=40.0, help="time limit of (b) and (c) each")
    p.add_argument("--load-batch", type=int, default=1000, help="statements per POST when loading the (d) store")
    p.add_argument("--load-clients", type=int, default=4, help="concurrent connections loading the (d) store")
    p.add_argument("--load-seconds", type=float, default=1500, help="time limit of the (d) load")
    p.add_argument("--query-seconds", type=float, default=20.0, help="time limit per query kind")
    p.add_argument("--queries", type=int, default=400, help="queries per kind (after 5 warm-up queries)")
    p.add_argument("--server-workers", type=int, default=2,
                   help="spor serve --workers (one process per core is the deployment the targets assume)")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw")
    p.add_argument("--client-procs", type=int, default=2, help="load-generator processes")
    p.add_argument("--server-log-level", default="info", help="SPOR_LOG_LEVEL of the server (production: info)")
    p.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy binary: profile the server in (b), (c)")
    p.add_argument("--py-spy-native", action="store_true", help="py-spy --native (C/Cython frames too)")
    p.add_argument("--server-cprofile", default=None, help="run the server under cProfile, write stats here")
    p.add_argument("--pg-stats", action="store_true",
                   help="load pg_stat_statements and print the server's top statements per phase")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: a,b,c,d")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (database, logs, profiles)")
    p.add_argument("--pg-shared-buffers", default="",
                   help="the cluster's shared_buffers (default: the embedded default, a quarter of memory)")
    p.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                   help="a PostgreSQL setting over the embedded default's (repeatable)")
    args = p.parse_args(argv)
    n_query = 10_000_000 if args.big else args.statements_query
    skip = set(filter(None, args.skip.split(",")))

    tmp = Path(tempfile.mkdtemp(prefix="spor-bench-"))
    tmp.chmod(0o755)
    pg_settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"} \
        if args.pg_stats else {}
    if args.pg_shared_buffers:
        pg_settings["shared_buffers"] = args.pg_shared_buffers
    for setting in args.pg_setting:
        name, sep, value = setting.partition("=")
        if not sep:
            p.error(f"--pg-setting {setting!r}: expected NAME=VALUE")
        pg_settings[name] = value
    pg = EmbeddedPostgres(tmp / "data", durable=True, pg_bin=os.environ.get("SPOR_PG_BIN"), settings=pg_settings)
    t_start = time.monotonic()
    print(f"Spor ingest benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, temp {tmp}, "
          f"code {_revision()}, spor serve --workers {args.server_workers})", flush=True)
    admin = pg.start()
    postmaster = int((pg.cluster_dir / "postmaster.pid").read_text().split()[0])
    env = Env(tmp, pg, admin, pg.url(DATABASE), postmaster, pg_stats=args.pg_stats)
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    try:
        asyncio.run(prepare_database(env, ["bench-batch", "bench-single", "bench-query"]))
        c_sync = asyncio.run(_setting(env, "synchronous_commit")), asyncio.run(_setting(env, "fsync"))
        say(f"PostgreSQL {pg.pg_bin}: durable (fsync={c_sync[1]}, synchronous_commit={c_sync[0]}), "
            f"shared_buffers={asyncio.run(_setting(env, 'shared_buffers'))}")
        start_server(env, args)
        assert env.server is not None
        say(f"spor serve pid {env.server.pid} on {HOST}:{env.port} (one process, uvicorn, log level "
            f"{args.server_log_level}{', under cProfile' if args.server_cprofile else ''})")
        async def warm_up() -> None:  # pay each worker's scrypt check of each credential before measuring
            await asyncio.gather(*(_one(env.port, get_request(env.port, _auth(*env.creds[store]), "limit=1"))
                                   for store in env.creds for _ in range(4 * args.server_workers)))
        asyncio.run(warm_up())
        rss_base = status_kb(env.server.pid, "VmRSS") / 1024
        say(f"client: {args.client}, {args.client_procs} load-generator processes; server RSS at start "
            f"{rss_base:.0f} MB")
        say()

        base: dict[str, float] = {}
        if "a" not in skip:
            say("(a) baseline: asyncpg copy_records_to_table into a bare table (id uuid pk, stored, payload jsonb)")
            base = asyncio.run(baseline(env, args.baseline_rows, 10_000, args.baseline_writers))
            say(f"    {base['rows']:,.0f} rows of ~{base['avg_bytes']:,.0f} B in {base['wall']:.1f} s by "
                f"{args.baseline_writers} connections, 10,000 rows per COPY/commit: "
                f"{fmt_rate(base['rate'])} rows/s  (PostgreSQL CPU {base['pg_cpu'] / base['wall']:.2f} cores)")
            say()

        results: dict[str, PhaseResult] = {}

        def show(r: PhaseResult, target: float) -> None:
            ratio = f", {r.rate / base['rate']:.3f} of (a)" if base else ""
            ok = "meets" if r.rate >= target else "BELOW"
            say(f"    {fmt_rate(r.statements)} statements in {r.requests:,} requests, {r.wall:.1f} s: "
                f"{fmt_rate(r.rate)} statements/s{ratio}   target >= {fmt_rate(target)}/s: {ok}")
            say(f"    request latency p50 {r.p50:.1f} ms, p95 {r.p95:.1f} ms, p99 {r.p99:.1f} ms; errors {r.errors}"
                + (f" (first: {r.first_error})" if r.errors else ""))
            say(f"    CPU cores used: server {r.server_cpu / r.wall:.2f}, PostgreSQL {r.pg_cpu / r.wall:.2f}, "
                f"load generators {r.client_cpu / r.wall:.2f}, everything else {r.other_cpu / r.wall:.2f} "
                f"(of {os.cpu_count()}); server CPU per statement {r.server_cpu / max(r.statements, 1) * 1e6:.1f} us, "
                f"PostgreSQL CPU per statement {r.pg_cpu / max(r.statements, 1) * 1e6:.1f} us")
            per_statement = (r.server_cpu + r.pg_cpu + r.client_cpu) / max(r.statements, 1)
            if per_statement > 0:
                # the machine's cores over the CPU one statement costs everywhere: no lock,
                # queue or client could make the phase faster than this on this machine
                say(f"    CPU ceiling: {os.cpu_count()} cores / {per_statement * 1e6:.1f} us of CPU per statement "
                    f"(server, PostgreSQL, load generators) = {fmt_rate(os.cpu_count() / per_statement)} statements/s")
            if r.other_cpu / r.wall > 0.2:
                say(f"    WARNING: other processes used {r.other_cpu / r.wall:.2f} cores during this phase; "
                    "the machine was not quiet and the figure is low by an unknown amount")
            if r.waits:
                say("    database sessions of the server, average over samples (state / wait event):")
                for w in r.waits:
                    say(w)
            for ln in r.profile:
                say(ln)
            say()

        if "b" not in skip:
            say(f"(b) POST /xapi/statements, batches of 100, {args.batch_clients} concurrent clients")
            r = run_phase(env, args, "batch", "bench-batch", statements=args.batch_statements, batch=100,
                          clients=args.batch_clients, seconds=args.seconds, seed=1, profile=True)
            results["b"] = r
            show(r, TARGETS["batch"])
        if "c" not in skip:
            say(f"(c) POST /xapi/statements, one statement per request, {args.single_clients} concurrent clients")
            r = run_phase(env, args, "single", "bench-single", statements=args.single_statements, batch=1,
                          clients=args.single_clients, seconds=args.seconds, seed=2, profile=True)
            results["c"] = r
            show(r, TARGETS["single"])

        queries: list[QueryResult] = []
        if "d" not in skip:
            say(f"(d) load N = {n_query:,} statements into the query store through the API "
                f"(POST batches of {args.load_batch}, {args.load_clients} connections, {args.client_procs} processes)")
            r = run_phase(env, args, "load", "bench-query", statements=n_query, batch=args.load_batch,
                          clients=args.load_clients, seconds=args.load_seconds, seed=3, sample_waits=False,
                          prebuild=False)
            results["load"] = r
            say(f"    loaded {fmt_rate(r.statements)} statements in {r.wall:.0f} s: {fmt_rate(r.rate)} statements/s "
                f"(CPU cores: server {r.server_cpu / r.wall:.2f}, PostgreSQL {r.pg_cpu / r.wall:.2f}, "
                f"load generators {r.client_cpu / r.wall:.2f}, everything else {r.other_cpu / r.wall:.2f}); "
                f"errors {r.errors}"
                + (f" (first: {r.first_error})" if r.errors else ""))
            if r.statements < n_query:
                say(f"    NOTE: the load stopped at the time limit; the query store holds {r.statements:,}, not "
                    f"{n_query:,}")
            asyncio.run(_execute(env, "ANALYZE events; ANALYZE statements; ANALYZE statement_term_runs"))
            for s in asyncio.run(table_sizes(env)):
                say("    " + s)
            pop = Population()
            procs_n = max(1, min(args.client_procs, args.load_clients))
            seeds = [3 * 100 + i for i in range(procs_n)]
            targets = query_targets(pop, seeds, r.statements // procs_n, args.queries + 5, random.Random(42))
            say(f"    queries: one client, sequential, {args.queries} per kind (max {args.query_seconds:.0f} s), "
                f"subjects sampled from stored statements, X-Experience-API-Version {XAPI_VERSION}")
            queries = asyncio.run(run_queries(env, "bench-query", targets, args.query_seconds))
            for q in queries:
                tgt = TARGETS["activity"] if q.kind.startswith("activity") else TARGETS[q.kind]
                ok = "meets" if q.p95 <= tgt else "ABOVE"
                say(f"    by {q.kind:<50} p50 {q.p50:7.1f}  p95 {q.p95:7.1f}  p99 {q.p99:7.1f} ms"
                    f"   target p95 <= {tgt:.0f} ms: {ok}   ({q.n} queries, {q.rows_mean:,.0f} rows / "
                    f"{q.bytes_mean / 1024:,.0f} KB per response, errors {q.errors})")
            say()

        # with --workers the requests are served by child processes: every process counts
        procs = [env.server.pid, *children(env.server.pid)]
        peaks = [status_kb(pid, "VmHWM") / 1024 for pid in procs]
        hwm = sum(peaks)
        say(f"(e) server peak RSS (VmHWM, summed over its {len(procs)} processes: "
            f"{' + '.join(f'{p:.0f}' for p in peaks)}): {hwm:.0f} MB   "
            f"target <= {TARGETS['rss']:.0f} MB: {'meets' if hwm <= TARGETS['rss'] else 'ABOVE'}")
        say()
        say("Summary")
        if base:
            say(f"  (a) COPY baseline             {fmt_rate(base['rate']):>9} rows/s")
        for k, label, tgt in (("b", "(b) POST batches of 100 x 8  ", TARGETS["batch"]),
                              ("c", "(c) POST single x 32         ", TARGETS["single"])):
            if k in results:
                r = results[k]
                ratio = f"   ratio to (a) {r.rate / base['rate']:.3f}" if base else ""
                say(f"  {label} {fmt_rate(r.rate):>9} statements/s   target >= {fmt_rate(tgt)}{ratio}")
        if "load" in results:
            say(f"  (d) N = {results['load'].statements:,} statements loaded at {fmt_rate(results['load'].rate)}/s")
        for q in queries:
            tgt = TARGETS["activity"] if q.kind.startswith("activity") else TARGETS[q.kind]
            say(f"  (d) by {q.kind:<50} p95 {q.p95:7.1f} ms (p50 {q.p50:.1f}, p99 {q.p99:.1f})   target <= {tgt:.0f}")
        say(f"  (e) server peak RSS           {hwm:9.0f} MB   target <= {TARGETS['rss']:.0f}")
        say(f"  total run time {time.monotonic() - t_start:.0f} s")
    finally:
        stop_server(env)
        with contextlib.suppress(Exception):
            pg.stop("fast")
        if args.keep or args.server_cprofile:
            (tmp / "report.txt").write_text("\n".join(lines) + "\n")
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


async def _setting(env: Env, name: str) -> str:
    c = await asyncpg.connect(env.db_url)
    try:
        return str(await c.fetchval("SELECT current_setting($1)", name))
    finally:
        await c.close()


if __name__ == "__main__":
    raise SystemExit(main())
