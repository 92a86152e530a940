"""`get -o custom-columns=` and `get --sort-by=` as kubectl does them."""

from __future__ import annotations

from typing import Any

import pytest

from clients.podctl.columns import custom_column_rows, parse_custom_columns, sort_by


def pod(name: str, created: str, restarts: int | None, node: str = "") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web"}},
        "spec": {"nodeName": node} if node else {},
        "status": {},
    }
    if restarts is not None:
        obj["status"]["containerStatuses"] = [
            {"name": "a", "restartCount": restarts},
            {"name": "b", "restartCount": 0},
        ]
    return obj


PODS = [
    pod("c", "2026-12-06T10:00:02Z", 10, "n1"),
    pod("a", "2026-12-06T10:00:03Z", 2),
    pod("b", "2026-12-06T10:00:01Z", None, "n2"),
]


def test_custom_columns_take_kubectls_spec_and_print_none_for_a_missing_value() -> None:
    cols = parse_custom_columns(
        "NAME:.metadata.name,NODE:.spec.nodeName,RESTARTS:{.status.containerStatuses[*].restartCount}"
    )
    assert [h for h, _ in cols] == ["NAME", "NODE", "RESTARTS"]
    assert custom_column_rows(PODS, cols) == [
        ["c", "n1", "10,0"],
        ["a", "<none>", "2,0"],
        ["b", "n2", "<none>"],
    ]
    assert custom_column_rows(PODS[:1], parse_custom_columns("L:.metadata.labels")) == [
        ['{"app":"web"}']
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "custom-columns format specified but no custom columns given"),
        ("NAME", "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"),
        ("NAME:.metadata.name,:.x", "unexpected custom-columns spec: :.x"),
    ],
)
def test_bad_custom_columns_specs_get_kubectls_messages(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_custom_columns(spec)


def test_sort_by_orders_times_as_text_and_numbers_by_value_missing_first() -> None:
    names = lambda objs: [o["metadata"]["name"] for o in objs]  # noqa: E731
    assert names(sort_by(PODS, ".metadata.creationTimestamp")) == ["b", "c", "a"]
    assert names(sort_by(PODS, "{.status.containerStatuses[0].restartCount}")) == ["b", "a", "c"]
    assert names(sort_by(PODS, ".metadata.name")) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="couldn't find any field with path"):
        sort_by(PODS, ".spec.nothing")
