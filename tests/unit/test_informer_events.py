"""The informer's cache rules, without servers: which events are stale, how a
list is merged, and when handlers fire."""

from __future__ import annotations

from typing import Any

from podmodel.meta import ObjectMeta
from podmodel.pod import Pod, PodSpec
from servicekit.informer import Informer


def pod(name: str, rv: int, node: str = "", **labels: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=name, namespace="default", resource_version=str(rv), labels=labels
        ),
        spec=PodSpec(node_name=node),
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (what, name, rv)

    def add(self, obj: Pod) -> None:
        self.calls.append(("add", obj.metadata.name, obj.metadata.resource_version))

    async def update(self, old: Pod, new: Pod) -> None:
        self.calls.append(("update", new.metadata.name, new.metadata.resource_version))

    def delete(self, obj: Pod) -> None:
        self.calls.append(("delete", obj.metadata.name, obj.metadata.resource_version))


def informer(**kw: Any) -> tuple[Informer[Pod], Recorder]:
    rec = Recorder()
    inf: Informer[Pod] = Informer(
        None,  # type: ignore[arg-type]  # no I/O in these tests
        None,  # type: ignore[arg-type]
        Pod,
        on_add=rec.add,
        on_update=rec.update,
        on_delete=rec.delete,
        **kw,
    )
    return inf, rec


def rvs(inf: Informer[Pod]) -> dict[str, str]:
    return {name: p.metadata.resource_version for (_, name), p in inf.cache.items()}


async def test_a_list_fills_the_cache_and_fires_adds() -> None:
    inf, rec = informer()
    inf.apply_list([pod("a", 3), pod("b", 5)], 7)
    await inf.dispatch()
    assert rvs(inf) == {"a": "3", "b": "5"}
    assert sorted(rec.calls) == [("add", "a", "3"), ("add", "b", "5")]
    assert inf.list_rv == 7


async def test_events_at_or_below_the_cached_version_are_dropped() -> None:
    inf, rec = informer()
    inf.apply_list([pod("a", 5)], 5)
    inf.apply_event("MODIFIED", pod("a", 5), 5)
    inf.apply_event("MODIFIED", pod("a", 4), 4)
    inf.apply_event("MODIFIED", pod("a", 6), 6)
    await inf.dispatch()
    assert rec.calls == [("add", "a", "5"), ("update", "a", "6")]


async def test_buffered_events_older_than_the_list_are_dropped_for_unknown_objects() -> None:
    inf, rec = informer()
    inf.apply_list([], 10)
    inf.apply_event("ADDED", pod("gone", 8), 8)  # created and deleted before the list
    inf.apply_event("DELETED", pod("gone", 9), 9)
    inf.apply_event("ADDED", pod("new", 11), 11)
    await inf.dispatch()
    assert rec.calls == [("add", "new", "11")]


async def test_a_late_event_cannot_resurrect_a_deleted_object() -> None:
    inf, rec = informer()
    inf.apply_list([pod("a", 5)], 5)
    inf.apply_event("DELETED", pod("a", 9), 9)
    inf.apply_event("MODIFIED", pod("a", 8), 8)  # published by a slower writer
    await inf.dispatch()
    assert rvs(inf) == {}
    assert rec.calls == [("add", "a", "5"), ("delete", "a", "9")]
    inf.apply_event("ADDED", pod("a", 12), 12)  # recreated for real
    await inf.dispatch()
    assert rvs(inf) == {"a": "12"}


async def test_a_pod_bound_away_leaves_the_unbound_queue() -> None:
    inf, rec = informer(node="")
    inf.apply_list([pod("a", 3)], 3)
    inf.apply_event("MODIFIED", pod("a", 4, node="n1"), 4)
    inf.apply_event("MODIFIED", pod("a", 3), 3)  # stale unbound state arriving late
    await inf.dispatch()
    assert rvs(inf) == {}
    assert rec.calls == [("add", "a", "3"), ("delete", "a", "4")]


async def test_a_pod_bound_here_arrives_at_the_node() -> None:
    inf, rec = informer(node="n1")
    inf.apply_list([], 3)
    inf.apply_event("MODIFIED", pod("a", 4, node="n1"), 4)
    await inf.dispatch()
    assert rec.calls == [("add", "a", "4")]


async def test_a_relist_diffs_against_the_cache() -> None:
    inf, rec = informer()
    inf.apply_list([pod("same", 1), pod("changed", 2), pod("removed", 3)], 3)
    inf.apply_event("ADDED", pod("newer", 12), 12)  # arrived after the next list's snapshot
    await inf.dispatch()
    rec.calls.clear()
    inf.apply_list([pod("same", 1), pod("changed", 6), pod("added", 7)], 10)
    await inf.dispatch()
    assert sorted(rec.calls) == [
        ("add", "added", "7"),
        ("delete", "removed", "3"),
        ("update", "changed", "6"),
    ]
    assert rvs(inf) == {"same": "1", "changed": "6", "added": "7", "newer": "12"}


async def test_a_relist_keeps_a_deletion_seen_after_its_snapshot() -> None:
    inf, rec = informer()
    inf.apply_list([], 1)
    inf.apply_event("ADDED", pod("a", 2), 2)
    inf.apply_event("DELETED", pod("a", 6), 6)
    inf.apply_list([pod("a", 2)], 5)  # snapshot taken before the deletion
    await inf.dispatch()
    assert rvs(inf) == {}
    assert rec.calls == [("add", "a", "2"), ("delete", "a", "6")]


async def test_a_failing_handler_does_not_stop_the_others() -> None:
    inf, rec = informer()

    def broken(obj: Pod) -> None:
        raise RuntimeError("boom")

    inf.add_handlers(on_add=broken)
    inf.add_handlers(on_add=rec.add)
    inf.apply_list([pod("a", 1)], 1)
    await inf.dispatch()
    assert rec.calls == [("add", "a", "1"), ("add", "a", "1")]


async def test_label_selector_filters_events() -> None:
    from podmodel.selector import LabelSelector

    inf, rec = informer(selector=LabelSelector(match_labels={"app": "web"}))
    inf.apply_list([pod("a", 1, app="web")], 1)
    inf.apply_event("MODIFIED", pod("a", 2, app="db"), 2)
    inf.apply_event("ADDED", pod("b", 3, app="db"), 3)
    await inf.dispatch()
    assert rec.calls == [("add", "a", "1"), ("delete", "a", "2")]
