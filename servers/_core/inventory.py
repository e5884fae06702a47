"""Which toolsets a server registers. Pure: names in, names out.

Read-only wins over any explicit include, and a write toolset is registered only when the
policy enables it. Unknown names are errors, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class UnknownToolset(ValueError):
    pass


@dataclass(frozen=True)
class Selection:
    toolsets: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (name, why)


def select_toolsets(
    requested: Iterable[str],
    access_by_name: Mapping[str, str],
    enabled_by_policy: Iterable[str],
    *,
    read_only: bool,
) -> Selection:
    names = [n.strip() for n in requested if n.strip()]
    if not names or "all" in names:
        names = list(access_by_name)
    unknown = [n for n in names if n not in access_by_name]
    if unknown:
        raise UnknownToolset(
            f"unknown toolset(s) {', '.join(unknown)}; known: {', '.join(sorted(access_by_name))} or 'all'"
        )
    enabled = set(enabled_by_policy)
    chosen, skipped = [], []
    for n in dict.fromkeys(names):
        if read_only and access_by_name[n] == "write":
            skipped.append((n, "read-only mode"))
        elif n not in enabled:
            skipped.append((n, "not enabled in the policy's [toolsets] enabled"))
        else:
            chosen.append(n)
    return Selection(tuple(chosen), tuple(skipped))
