"""`scripts/bench`: every section measured side by side in one run, medians, printed as tables."""

from __future__ import annotations

import importlib
import sys

SECTIONS = ["bench.seam", "bench.coldstart", "bench.token_economy", "bench.audit"]


def main(argv: list[str]) -> int:
    wanted = [a for a in argv if not a.startswith("-")]
    for name in SECTIONS:
        if wanted and name.split(".")[-1] not in wanted:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            print(f"\n## {name}: not available ({e})")
            continue
        print(f"\n## {name.split('.')[-1]}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
