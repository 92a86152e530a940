"""StaticPodSource.scan against a real directory with a recording host: new,
edited, removed, hidden and broken manifests (no store involved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from podmodel.pod import Pod

from services.node_agent.static_pods import StaticPodSource

POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: app, image: {image}}}\n"


class Host:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []

    def start_static(self, pod: Pod) -> None:
        self.log.append(("start", pod.metadata.name, pod.metadata.uid))

    def stop_static(self, pod: Pod) -> None:
        self.log.append(("stop", pod.metadata.name, pod.metadata.uid))

    def set_mirror(self, static_uid: str, mirror: Pod | None) -> None:
        self.log.append(("mirror", static_uid, ""))


def source(tmp_path: Path, host: Host) -> StaticPodSource:
    return StaticPodSource("Node-A", str(tmp_path), cast(Any, None), host)


def test_scan_starts_replaces_and_stops_static_pods(tmp_path: Path) -> None:
    host = Host()
    src = source(tmp_path, host)
    (tmp_path / "web.yaml").write_text(POD.format(name="web", image="a"))
    (tmp_path / ".web.yaml.swp").write_text("junk")
    src.scan()
    [(what, name, uid)] = host.log
    assert (what, name) == ("start", "web-node-a") and uid
    src.scan()
    assert len(host.log) == 1  # nothing changed
    (tmp_path / "web.yaml").write_text(POD.format(name="web", image="b"))
    src.scan()
    assert [entry[0] for entry in host.log[1:]] == ["stop", "start"]
    assert host.log[1][2] == uid and host.log[2][2] != uid
    (tmp_path / "web.yaml").unlink()
    src.scan()
    assert host.log[-1][:2] == ("stop", "web-node-a") and not src.statics


def test_broken_manifest_is_skipped_until_fixed(tmp_path: Path) -> None:
    host = Host()
    src = source(tmp_path, host)
    (tmp_path / "bad.yaml").write_text("kind: Pod\nmetadata: {name: bad}\nspec: {containers: 3}\n")
    src.scan()
    src.scan()
    assert host.log == []
    (tmp_path / "bad.yaml").write_text(POD.format(name="bad", image="a"))
    src.scan()
    assert [e[:2] for e in host.log] == [("start", "bad-node-a")]
