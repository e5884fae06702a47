"""The GraphQL documents Spyglass sends to Linear are fixed constants that validate against Linear's
published schema; so do the documents (and variables) the client actually sent in a session."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from servers.linear import documents as docs
from tests.conformance import spec_path, specs_available
from tests.conftest import Harness

pytestmark = pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")

graphql = pytest.importorskip("graphql")


@functools.cache
def schema() -> Any:
    return graphql.build_schema(spec_path("linear-schema.graphql").read_text(encoding="utf-8"))


def document_errors(document: str) -> list[str]:
    return [e.message for e in graphql.validate(schema(), graphql.parse(document))]


def variable_errors(document: str, variables: dict[str, Any]) -> list[str]:
    """Coerce the variables against the operation's declared types, as a GraphQL server would."""
    from graphql.execution.values import get_variable_values

    op = next(d for d in graphql.parse(document).definitions if isinstance(d, graphql.OperationDefinitionNode))
    result = get_variable_values(schema(), op.variable_definitions, variables)
    return [e.message for e in result] if isinstance(result, list) else []


@pytest.mark.parametrize("name", sorted(docs.ALL_DOCUMENTS))
def test_every_document_validates_against_linears_schema(name: str) -> None:
    document = docs.ALL_DOCUMENTS[name]
    assert document_errors(document) == []
    assert docs.operation_name(document) == name


def test_the_validator_is_on_a_misspelt_field_is_rejected() -> None:
    bad = docs.GET_ISSUE.replace("priorityLabel", "priorityLable")
    assert any("priorityLable" in e for e in document_errors(bad))
    wrong_type = "query Q($id: Int!) { issue(id: $id) { id } }"
    assert document_errors(wrong_type)


def test_the_variable_check_is_on_a_misspelt_filter_field_is_rejected() -> None:
    assert variable_errors(docs.SEARCH_ISSUES, {"first": 5, "filter": {"team": {"key": {"eq": "CHK"}}}}) == []
    assert variable_errors(docs.SEARCH_ISSUES, {"first": 5, "filter": {"teem": {"key": {"eq": "CHK"}}}})
    assert variable_errors(docs.SEARCH_ISSUES, {"first": "five"})


def test_read_and_write_documents_do_not_overlap_and_reads_hold_no_mutation() -> None:
    assert not set(docs.READ_DOCUMENTS) & set(docs.WRITE_DOCUMENTS)
    for d in docs.READ_DOCUMENTS:
        assert d.strip().startswith("query ")
    assert {docs.operation_name(d) for d in docs.WRITE_DOCUMENTS if d.strip().startswith("mutation ")} == {
        "SpyglassCreateIssue", "SpyglassAddComment"}


@pytest.mark.anyio
async def test_documents_and_variables_the_client_sent_validate_and_are_our_constants(harness: Harness) -> None:
    policy = {"toolsets": {"enabled": ["linear", "linear_write"]},
              "scopes": [{"toolset": "linear", "teams": ["CHK", "PAY"]}],
              "rules": [{"id": "linear-writes", "effect": "allow", "toolsets": ["linear_write"]}]}
    calls = [
        ("linear_search_issues", {"text": "checkout", "state": "In Progress", "assignee": "omar", "label": "incident",
                                  "from": "now-1d"}),
        ("linear_search_issues", {"team": "PAY", "limit": 1}),
        ("linear_get_issue", {"issue": "CHK-311"}),
        ("linear_list_projects", {}),
        ("linear_list_projects", {"team": "CHK"}),
        ("linear_create_issue", {"team": "CHK", "title": "Alert on pool saturation", "priority": 2,
                                 "description": "From the CHK-311 review."}),
        ("linear_add_comment", {"issue": "CHK-311", "body": "Flag rolled back to 10%."}),
    ]
    async with harness.client(harness.server(policy=policy, toolsets=["linear", "linear_write"])) as c:
        for tool, args in calls:
            r = await c.call_tool(tool, args)
            assert not r.is_error, r.content
    sent = [json.loads(r.body) for r in harness.transport.requests]
    assert len(sent) == 9  # each write looks up its team or issue first
    constants = set(docs.ALL_DOCUMENTS.values())
    for body in sent:
        assert body["query"] in constants  # no tool forwards a document of its own
        assert document_errors(body["query"]) == []
        assert variable_errors(body["query"], body["variables"]) == [], body
        assert body["operationName"] == docs.operation_name(body["query"])
