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

# deploy/compose: nats, redis, jaeger and each service in its own container (needs Docker).
compose-up *args:
    docker compose -p podbus -f deploy/compose/compose.yaml up -d --build {{args}}
    @echo "Jaeger: http://localhost:16686   podctl: PODBUS_NATS_URL=nats://localhost:4222 podctl get pods"

# Stop the compose deployment (volumes kept; `just compose-down -v` removes them).
compose-down *args:
    docker compose -p podbus -f deploy/compose/compose.yaml down {{args}}
