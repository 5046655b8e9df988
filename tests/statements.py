"""Made-up statements for tests: fictional people, example.org addresses, no real identifiers."""

from __future__ import annotations

import uuid
from typing import Any

HOMEPAGE = "https://id.example.org"


def agent(name: str = "kari") -> dict[str, Any]:
    return {"objectType": "Agent", "name": name.title(), "account": {"homePage": HOMEPAGE, "name": f"emp-{name}"}}


def statement(
    actor: str = "kari", verb: str = "completed", activity: str = "hand-hygiene", **extra: Any
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "actor": agent(actor),
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb, "nb-NO": verb}},
        "object": {
            "objectType": "Activity",
            "id": f"https://courses.example.org/{activity}",
            "definition": {"name": {"en-US": activity, "nb-NO": activity}, "type": "http://adlnet.gov/expapi/activities/course"},
        },
    }
    s.update(extra)
    return s


def with_id(s: dict[str, Any]) -> dict[str, Any]:
    return {**s, "id": str(uuid.uuid4())}
