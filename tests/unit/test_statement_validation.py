"""Statement validation: the corpus of accept/reject cases for xAPI 1.0.3 and 2.0.0, and the
agreement between the compiled fast path (jsonschema-rs) and the reference (jsonschema)."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from statements_schema import (
    SCHEMA_VERSIONS,
    ValidationFailure,
    root_schema,
    validate_activity_definition,
    validate_actor,
    validate_agent,
    validate_group,
    validate_statement,
)
from statements_schema.validator import schema_errors_fast, schema_errors_reference

_CORPUS_FILE = Path(__file__).resolve().parents[1] / "corpus" / "statements" / "cases.py"


def _load_corpus() -> ModuleType:
    # Loaded by path: tests/ is not a package and the repo-level conftest belongs to the lead.
    spec = importlib.util.spec_from_file_location("spor_statement_corpus", _CORPUS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus()
CASES: list[Any] = corpus.cases()
PAIRS: list[tuple[Any, str]] = [(c, v) for c in CASES for v in c.versions]


def _params(pairs: list[tuple[Any, str]]) -> list[Any]:
    return [pytest.param(c, v, id=f"{v}: {c.name}") for c, v in pairs]


ACCEPT = _params([(c, v) for c, v in PAIRS if c.accept])
REJECT = _params([(c, v) for c, v in PAIRS if not c.accept])
SCHEMA_LEVEL = _params([(c, v) for c, v in PAIRS if c.schema_level])
SEMANTIC_LEVEL = _params([(c, v) for c, v in PAIRS if not c.schema_level])
AGENT_PARAMS = _params([(c, v) for c in corpus.agent_cases() for v in c.versions])


def test_corpus_is_big_and_balanced() -> None:
    assert len(PAIRS) >= 400
    assert len(ACCEPT) >= 120
    assert len(REJECT) >= 250
    names = [(c.name, c.versions) for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"


@pytest.mark.parametrize(("case", "version"), ACCEPT)
def test_statement_accepted(case: Any, version: str) -> None:
    validate_statement(case.statement, version)


@pytest.mark.parametrize(("case", "version"), REJECT)
def test_statement_rejected_with_path(case: Any, version: str) -> None:
    with pytest.raises(ValidationFailure) as info:
        validate_statement(case.statement, version)
    assert info.value.path == case.path, str(info.value)
    assert info.value.message
    expected = f"{case.path}: {info.value.message}" if case.path else info.value.message
    assert str(info.value) == expected


@pytest.mark.parametrize(("case", "version"), REJECT)
def test_reference_validator_rejects_too(case: Any, version: str) -> None:
    with pytest.raises(ValidationFailure):
        validate_statement(case.statement, version, reference=True)


@pytest.mark.parametrize(("case", "version"), SCHEMA_LEVEL)
def test_fast_path_and_reference_agree(case: Any, version: str) -> None:
    """Same schema document, two implementations: same verdict, and the fast path's error
    path is one the reference reports as well."""
    statement = case.statement
    fast = schema_errors_fast(statement, version, "statement")
    reference = schema_errors_reference(statement, version, "statement")
    assert (fast is None) == (reference is None), (fast, reference)
    if fast is not None and reference is not None:
        assert fast.path == reference.path, (str(fast), str(reference))
        assert fast.message == reference.message


@pytest.mark.parametrize(("case", "version"), SEMANTIC_LEVEL)
def test_semantic_cases_pass_the_schema(case: Any, version: str) -> None:
    """Cases marked semantic are rejected by the Python checks, not by the schema; if the
    schema starts catching them, the marker (and maybe the Python check) is stale."""
    assert schema_errors_fast(case.statement, version, "statement") is None


@pytest.mark.parametrize(("case", "version"), AGENT_PARAMS)
def test_agent_parameter(case: Any, version: str) -> None:
    if case.accept:
        validate_agent(case.statement, version)
    else:
        with pytest.raises(ValidationFailure) as info:
            validate_agent(case.statement, version)
        assert info.value.path == case.path, str(info.value)


# --- specific messages -------------------------------------------------------------------------


def test_mbox_message_names_path_and_rule() -> None:
    stmt = corpus.minimal()
    stmt["actor"]["mbox"] = "kari@example.org"
    with pytest.raises(ValidationFailure, match=r"^actor\.mbox: must be a mailto: IRI"):
        validate_statement(stmt, "2.0.0")


def test_unknown_property_message() -> None:
    stmt = corpus.minimal()
    stmt["actor"]["foo"] = 1
    with pytest.raises(ValidationFailure) as info:
        validate_statement(stmt, "1.0.3")
    assert str(info.value) == "actor.foo: unknown property"


@pytest.mark.parametrize("reference", [False, True])
def test_a_property_in_another_case_says_so_rather_than_that_the_right_one_is_missing(reference: bool) -> None:
    stmt = corpus.minimal()
    stmt["Actor"] = stmt.pop("actor")
    with pytest.raises(ValidationFailure) as info:
        validate_statement(stmt, "1.0.3", reference=reference)
    assert str(info.value) == "Actor: unknown property; property names are case-sensitive (did you mean actor?)"
    stmt = corpus.minimal()
    stmt["actor"]["MBOX"] = stmt["actor"].pop("mbox")
    with pytest.raises(ValidationFailure, match=r"^actor\.MBOX: unknown property; .* \(did you mean mbox\?\)$"):
        validate_statement(stmt, "2.0.0", reference=reference)


@pytest.mark.parametrize("reference", [False, True])
def test_an_object_type_in_another_case_is_named_as_such(reference: bool) -> None:
    stmt = corpus.minimal()
    stmt["actor"] = {"objectType": "group", "member": [stmt["actor"]]}
    with pytest.raises(ValidationFailure) as info:
        validate_statement(stmt, "1.0.3", reference=reference)
    assert str(info.value) == ("actor.objectType: must be 'Agent'; objectType values are case-sensitive: "
                               "'group' is written 'Group'")


def test_missing_property_message() -> None:
    stmt = corpus.minimal()
    del stmt["verb"]
    with pytest.raises(ValidationFailure) as info:
        validate_statement(stmt, "1.0.3")
    assert str(info.value) == "verb: is required"


def test_context_activities_path_is_indexed() -> None:
    stmt = corpus.typical()
    stmt["context"]["contextActivities"]["parent"][0]["id"] = "parent-1"
    with pytest.raises(ValidationFailure) as info:
        validate_statement(stmt, "2.0.0")
    assert info.value.path == "context.contextActivities.parent[0].id"
    assert "absolute IRI" in info.value.message


def test_root_error_has_no_path_prefix() -> None:
    with pytest.raises(ValidationFailure) as info:
        validate_statement("not a statement", "2.0.0")
    assert info.value.path == ""
    assert str(info.value) == info.value.message == "must be an object"


def test_substatement_forbidden_property_message() -> None:
    stmt = corpus.substatement()
    stmt["object"]["id"] = corpus.UUID_A
    with pytest.raises(ValidationFailure, match=r"^object\.id: a SubStatement must not have id"):
        validate_statement(stmt, "1.0.3")


def test_two_identifiers_message() -> None:
    stmt = corpus.minimal()
    stmt["actor"]["openid"] = "https://openid.example.org/kari"
    with pytest.raises(ValidationFailure, match=r"^actor: must have exactly one inverse functional identifier"):
        validate_statement(stmt, "2.0.0")


def test_validation_failure_is_a_value_error_and_pickles() -> None:
    error = ValidationFailure("result.score.raw", "must not be greater than max")
    assert isinstance(error, ValueError)
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.path, clone.message, str(clone)) == (error.path, error.message, str(error))


# --- other entry points -----------------------------------------------------------------------


def test_validate_group_and_actor() -> None:
    validate_group(copy.deepcopy(corpus.GROUP_IDENTIFIED), "1.0.3")
    validate_actor(copy.deepcopy(corpus.AGENT_SHA1), "2.0.0")
    with pytest.raises(ValidationFailure) as info:
        validate_group(copy.deepcopy(corpus.AGENT_MBOX), "2.0.0")
    assert info.value.path == "objectType"
    with pytest.raises(ValidationFailure) as info:
        validate_actor({"objectType": "Group"}, "1.0.3")
    assert info.value.path == ""


def test_validate_activity_definition() -> None:
    definition = {"interactionType": "choice", "choices": corpus.components("a", "b")}
    validate_activity_definition(definition, "2.0.0")
    definition["choices"] = corpus.components("a", "a")
    with pytest.raises(ValidationFailure) as info:
        validate_activity_definition(definition, "2.0.0")
    assert info.value.path == "choices[1].id"


def test_patch_versions_map_to_their_schema_set() -> None:
    stmt = corpus.typical()
    stmt["context"]["contextAgents"] = [{"objectType": "contextAgent", "agent": copy.deepcopy(corpus.AGENT_MBOX)}]
    validate_statement(stmt, "2.0.1")
    with pytest.raises(ValidationFailure):
        validate_statement(stmt, "1.0.1")
    with pytest.raises(ValueError, match="unsupported xAPI version"):
        validate_statement(stmt, "0.95")


# --- the schema files themselves ----------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("entry", ["statement", "agent", "group", "actor", "activityDefinition", "agentParameter"])
def test_schema_documents_are_valid_draft7(version: str, entry: str) -> None:
    jsonschema.Draft7Validator.check_schema(root_schema(version, entry))


def test_root_schema_returns_a_private_copy() -> None:
    schema = root_schema("2.0.0")
    schema["definitions"]["agent"]["additionalProperties"] = True
    assert root_schema("2.0.0")["definitions"]["agent"]["additionalProperties"] is False


def test_validation_does_not_modify_the_statement() -> None:
    stmt = corpus.typical()
    before = copy.deepcopy(stmt)
    validate_statement(stmt, "2.0.0")
    assert stmt == before
