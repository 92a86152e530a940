"""Resource names, connection resolution and the completion script."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.podctl.cli import build_parser
from clients.podctl.completion import completion_script
from clients.podctl.connection import DEFAULT_SERVER, resolve
from clients.podctl.kinds import UnknownResource, parse_targets, resource


def test_short_and_qualified_names_resolve() -> None:
    for name in (
        "po",
        "pods",
        "Pod",
        "deploy",
        "deployments.apps",
        "rs",
        "sts",
        "jobs",
        "no",
        "ev",
    ):
        resource(name)
    assert resource("deploy").ref("web") == "deployment.apps/web"
    assert resource("po").plural_ref("x") == 'pods "x"'
    with pytest.raises(UnknownResource, match='resource type "foo"'):
        resource("foo")


def test_target_forms() -> None:
    assert [(r.kind, n) for r, n in parse_targets(["pods"])] == [("Pod", None)]
    assert [(r.kind, n) for r, n in parse_targets(["po", "a", "b"])] == [("Pod", "a"), ("Pod", "b")]
    assert [(r.kind, n) for r, n in parse_targets(["deploy/web", "po/x"])] == [
        ("Deployment", "web"),
        ("Pod", "x"),
    ]
    assert [r.kind for r, _ in parse_targets(["po,deploy"])] == ["Pod", "Deployment"]


def test_server_resolution_order(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert resolve(server=None, env=env).server == DEFAULT_SERVER
    state = tmp_path / ".local" / "state" / "podbus"
    state.mkdir(parents=True)
    (state / "endpoints.env").write_text("NATS_URL=nats://127.0.0.1:1\nREDIS_URL=redis://x\n")
    assert resolve(server=None, env=env).server == "nats://127.0.0.1:1"
    env["NATS_URL"] = "nats://a:2"
    assert resolve(server=None, env=env).server == "nats://a:2"
    env["PODBUS_NATS_URL"] = "nats://b:3"
    assert resolve(server=None, env=env).server == "nats://b:3"
    assert resolve(server="nats://c:4", env=env).server == "nats://c:4"


def test_credentials_from_flags_and_environment() -> None:
    conn = resolve(server=None, env={"NATS_USER": "u", "NATS_PASSWORD": "p", "NATS_TOKEN": "t"})
    options = conn.connect_options()
    assert options["user"] == "u" and options["password"] == "p" and options["token"] == "t"
    assert resolve(server=None, env={}, creds="/x.creds").connect_options()["creds"] == "/x.creds"
    assert "tls" in resolve(server="tls://h:4222", env={}).connect_options()


def test_bash_completion_lists_verbs_and_types() -> None:
    script = completion_script("bash", build_parser())
    assert "complete -F _podctl podctl" in script
    for word in ("apply", "rollout", "debug", "deploy", "statefulsets", "--grace-period"):
        assert word in script


def test_all_is_kubectls_category_of_what_podbus_serves() -> None:
    assert [r.kind for r, n in parse_targets(["all"])] == [
        "Pod",
        "DaemonSet",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "CronJob",
        "Job",
    ]
    assert [r.kind for r, _ in parse_targets(["all,nodes"])][-1] == "Node"
    assert [r.kind for r, _ in parse_targets(["po,all"])].count("Pod") == 1
    with pytest.raises(UnknownResource, match="across multiple types"):
        parse_targets(["all", "web"])
