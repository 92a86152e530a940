# podbus tasks. `just --list` shows them all.
set shell := ["bash", "-euo", "pipefail", "-c"]

py := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }
bin := if path_exists(".venv/bin/python") == "true" { ".venv/bin/" } else { "" }

# Run the whole test suite: layer contracts, then unit, integration and e2e tests.
test *args:
    {{bin}}lint-imports
    {{py}} -m pytest {{args}}

# Unit tests only (no servers).
unit *args:
    {{py}} -m pytest tests/unit {{args}}

# ruff and mypy.
lint:
    {{bin}}ruff check .
    {{bin}}ruff format --check .
    {{bin}}mypy
    {{bin}}lint-imports

# Format the code.
fmt:
    {{bin}}ruff format .
    {{bin}}ruff check --fix .

# Every benchmark; each prints its figures one a line.
bench:
    for b in bench/*.py; do echo "== $b"; {{py}} "$b"; done

# The embedded default: nats-server, redis-server, every service and one node.
up *args:
    {{bin}}podbus up {{args}}
