"""Placeholder module registering no commands until `serve` lands (lead is writing it)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    _ = (argparse, sub)
