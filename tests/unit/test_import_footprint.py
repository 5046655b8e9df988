"""What a server process imports before it needs it: the libraries of signed statements
(cryptography), single sign-on (PyJWT, cryptography, httpx) and the reference schema validator
(jsonschema) wait for their first use. Held from startup they made each of a server's processes
~14 MB larger (importing the app 58 -> 43 MB without them); the supervisor of
``spor serve --workers N`` used none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

LATER = ("cryptography", "jwt", "httpx", "jsonschema")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {LATER!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["lrs.app", "lrs.cli"])
def test_starting_a_server_process_imports_none_of_the_libraries_used_later(module: str) -> None:
    assert _imported_after(f"import {module}") == set()


def test_verifying_a_signature_or_a_token_imports_what_it_uses() -> None:
    # the lazily imported names are the ones these modules use (an import error shows here)
    code = (
        "from lrs.ops import oidc, signature\n"
        "from statements_schema.validator import schema_errors_reference\n"
        "oidc._parse_jwks({'keys': [{'kty': 'EC', 'crv': 'P-256', 'x': 'e30', 'y': 'e30'}]})\n"
        "assert schema_errors_reference({}, '1.0.3', 'statement') is not None\n"
        "try:\n"
        "    signature._verify_with_x5c(['AAAA'], 'RS256', b'x', b'y')\n"
        "except Exception as exc:\n"
        "    assert 'cannot be parsed' in str(exc), exc\n"
    )
    assert _imported_after(code) == {"cryptography", "jwt", "jsonschema"}
