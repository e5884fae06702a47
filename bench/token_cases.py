"""Investigation questions for the token-economy bench: one tool call each, and the facts the
answer must contain. The bench runs each against the sandbox and compares the tokens of our
text with the tokens of the raw upstream JSON the same call fetched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenCase:
    question: str
    tool: str
    args: dict[str, Any]
    facts: tuple[str, ...]  # substrings our answer must contain for the question to be answered
