# Sourced by scripts/*: makes sure .venv exists and matches pyproject.toml (first run: ~1 minute).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pick_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  echo "spyglass needs Python 3.11 or newer on PATH" >&2; return 1
}
stamp=".venv/.spyglass-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (installing spyglass-mcp with its dev extras)..." >&2
  log=".venv/install.log"
  .venv/bin/python -m pip install --quiet --upgrade pip >"$log" 2>&1 || true
  if ! .venv/bin/python -m pip install --quiet -e '.[dev]' >>"$log" 2>&1 \
      || ! .venv/bin/python -c 'import servers.cli, mcp, httpx2' 2>>"$log"; then
    tail -40 "$log" >&2; echo "setting up .venv failed; full log: $log" >&2; exit 1
  fi
  echo "$want" > "$stamp"
fi
