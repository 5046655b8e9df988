"""Micro benchmark: statement validation throughput, fast path vs reference.

Validates the corpus's typical statement (~1.5 KB: result, context, extensions) repeatedly on
one core and prints statements/s for

- fast path: ``validate_statement`` (jsonschema-rs ``is_valid`` + the Python semantic checks),
- reference: the same schema through the pure-Python ``jsonschema`` package,
- fastjsonschema on the same schema, when installed (the alternative that was measured and not
  chosen),

each with its ratio to the reference measured in the same run.

    python3 bench/validation.py [--seconds 2] [--version 2.0.0]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from statements_schema import root_schema, validate_statement  # noqa: E402


def _typical_statement() -> dict[str, Any]:
    path = ROOT / "tests" / "corpus" / "statements" / "cases.py"
    spec = importlib.util.spec_from_file_location("spor_statement_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    statement: dict[str, Any] = module.typical()
    return statement


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(50):
        fn()
    calls, batch = 0, 10
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed
        batch = min(batch * 2, 10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--version", default="2.0.0", choices=["1.0.3", "2.0.0"])
    args = parser.parse_args()

    statement = _typical_statement()
    size = len(orjson.dumps(statement))
    version: str = args.version

    results: list[tuple[str, float]] = []
    reference = _rate(lambda: validate_statement(statement, version, reference=True), args.seconds)
    results.append(("reference (jsonschema, pure Python)", reference))
    results.append(
        (
            "fast path (jsonschema-rs + semantic checks)",
            _rate(lambda: validate_statement(statement, version), args.seconds),
        )
    )
    raw = orjson.dumps(statement)
    results.append(
        ("fast path incl. orjson.loads", _rate(lambda: validate_statement(orjson.loads(raw), version), args.seconds))
    )
    try:
        import fastjsonschema
    except ImportError:
        pass
    else:
        compiled = fastjsonschema.compile(root_schema(version))
        results.append(("fastjsonschema (schema only, not used)", _rate(lambda: compiled(statement), args.seconds)))

    print(f"xAPI {version}, typical statement of {size} bytes, one core, {args.seconds:g} s per row")
    for name, rate in results:
        print(f"  {name:<46} {rate:>10,.0f} statements/s   x{rate / reference:,.1f} vs reference")


if __name__ == "__main__":
    main()
