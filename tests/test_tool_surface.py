"""The tool surface stays reviewable: snapshots, hints on every tool, and a token budget."""

from __future__ import annotations

import json

import pytest

from guards.enforce import estimate_tokens
from servers.app import TOOLSETS, WRITE_TOOLSETS, load_toolset
from tests.toolsnaps import README, SNAP_DIR, document, listing, readme_tools, render, splice_readme

pytestmark = pytest.mark.anyio

# Budgets for the tools/list of groups of toolsets (issue targets), in estimated tokens.
TOKEN_BUDGETS: dict[tuple[str, ...], int] = {
    ("datadog", "grafana"): 6000,
    ("statsig", "slack", "drive", "linear"): 4000,
}


@pytest.mark.parametrize("toolset", sorted(TOOLSETS))
async def test_tool_schemas_match_their_reviewed_snapshot(toolset: str) -> None:
    path = SNAP_DIR / f"{toolset}.json"
    current = render(await document(toolset))
    assert path.exists(), f"no listing for {toolset}: run scripts/update-toolsnaps and review it"
    assert path.read_text() == current, (
        f"tool surface of {toolset} changed: run scripts/update-toolsnaps and review the diff"
    )


@pytest.mark.parametrize("toolset", sorted(TOOLSETS))
async def test_every_tool_carries_all_four_hints_matching_its_access(toolset: str) -> None:
    for tool in await listing([toolset]):
        hints = tool["annotations"]
        for key in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert key in hints, f"{tool['name']} lacks {key}"
        assert hints["readOnlyHint"] is (toolset not in WRITE_TOOLSETS), tool["name"]


def test_the_readme_tool_table_matches_the_listings() -> None:
    docs = {name: json.loads((SNAP_DIR / f"{name}.json").read_text()) for name in TOOLSETS}
    text = README.read_text()
    assert splice_readme(text, readme_tools(docs)) == text, "README tool table is stale: run scripts/update-toolsnaps"


def test_tool_names_follow_vendor_verb_noun_and_are_unique() -> None:
    seen: set[str] = set()
    for name in TOOLSETS:
        for spec in load_toolset(name).tools:
            assert spec.name not in seen
            seen.add(spec.name)
            assert spec.name.startswith(name.removesuffix("_write").split("_")[0] + "_"), spec.name


async def test_whole_tools_list_token_size_is_reported_and_within_group_budgets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    everything = await listing(sorted(TOOLSETS))
    total = estimate_tokens(json.dumps(everything))
    with capsys.disabled():
        print(f"\n[tools/list] {len(everything)} tools, ~{total} tokens for all toolsets")
    for group, budget in TOKEN_BUDGETS.items():
        present = [g for g in group if g in TOOLSETS]
        if not present:
            continue
        size = estimate_tokens(json.dumps(await listing(present)))
        assert size <= budget, f"tools/list of {present} is ~{size} tokens, over the {budget} budget"
