"""The logic package stays pure and exports what drivers use."""

from __future__ import annotations

import ast
import pathlib

import services.workload_controller.logic as logic

LOGIC_DIR = pathlib.Path(logic.__file__).parent
FORBIDDEN = {"nats", "redis", "asyncio", "opentelemetry", "servicekit", "time", "socket"}


def test_logic_modules_import_no_io_and_read_no_clock() -> None:
    for path in LOGIC_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                roots = set()
            assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN}"
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
                assert not (
                    isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date")
                ), f"{path.name} reads the clock"


def test_public_names_are_the_plan_functions_and_actions() -> None:
    assert {name for name in logic.__all__ if name.startswith("plan_")} == {
        "plan_cronjob",
        "plan_daemonset",
        "plan_deployment",
        "plan_garbage_collection",
        "plan_job",
        "plan_node_lifecycle",
        "plan_replicaset",
        "plan_rollback",
        "plan_statefulset",
    }
    for name in logic.__all__:
        assert hasattr(logic, name)
