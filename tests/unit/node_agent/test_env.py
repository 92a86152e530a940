"""Environment resolution, $(VAR) expansion and argv, as Kubernetes does them."""

from __future__ import annotations

import pytest
from podmodel.meta import ObjectMeta
from podmodel.pod import (
    ConfigMapEnvSource,
    ConfigMapKeySelector,
    Container,
    EnvFromSource,
    EnvVar,
    EnvVarSource,
    HostIP,
    ObjectFieldSelector,
    Pod,
    PodIP,
    ResourceFieldSelector,
    ResourceRequirements,
)

from services.node_agent.logic.env import (
    EnvError,
    container_env,
    effective_argv,
    expand,
    expand_command_and_args,
    field_ref_value,
    mapping_for,
    merge_image_env,
)
from tests.unit.node_agent.builders import container, make_pod

VARS = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}

# Cases from Kubernetes' third_party/forked/golang/expansion/expand_test.go.
EXPANSIONS = [
    ("$(VAR_A)", "A"),
    ("___$(VAR_B)___", "___B___"),
    ("$(VAR_A)-1", "A-1"),
    ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("$$(VAR_A)$$(VAR_B)", "$(VAR_A)$(VAR_B)"),
    ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
    ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("$(VAR_REF)", "$(VAR_A)"),
    ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
    ("foo$(VAR_EMPTY)bar", "foobar"),
    ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$VAR_A)", "$VAR_A)"),
    ("$(VAR_A", "$(VAR_A"),
    ("$", "$"),
    ("$$", "$"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("$$$$$$$(VAR_A)", "$$$A"),
    ("$$$$$$$$(VAR_A)", "$$$$(VAR_A)"),
    ("$(VAR_A)$", "A$"),
    ("$()", "$()"),
    ("$(", "$("),
    ("hello $(VAR_A) and $(VAR_Z)", "hello A and $(VAR_Z)"),
    ("ünï$(VAR_A)cødé", "ünïAcødé"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), EXPANSIONS)
def test_expansion_matches_kubernetes(text: str, expected: str) -> None:
    assert expand(text, mapping_for(VARS)) == expected


def field(path: str) -> EnvVar:
    return EnvVar(name="X", value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path=path)))


def downward_pod() -> Pod:
    pod = make_pod(service_account_name="robot")
    pod.metadata = ObjectMeta(
        name="web-0",
        namespace="shop",
        uid="uid-1",
        labels={"app": "web", "tier": "front"},
        annotations={"note": 'say "hi"\n'},
    )
    pod.status.pod_ip = "10.0.0.5"
    pod.status.pod_ips = [PodIP(ip="10.0.0.5"), PodIP(ip="fd00::5")]
    pod.status.host_ip = "192.168.1.10"
    pod.status.host_ips = [HostIP(ip="192.168.1.10")]
    return pod


FIELD_REFS = [
    ("metadata.name", "web-0"),
    ("metadata.namespace", "shop"),
    ("metadata.uid", "uid-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['missing']", ""),
    ("metadata.annotations['note']", 'say "hi"\n'),
    ("metadata.labels", 'app="web"\ntier="front"'),
    ("metadata.annotations", 'note="say \\"hi\\"\\n"'),
    ("spec.nodeName", "node-1"),
    ("spec.serviceAccountName", "robot"),
    ("status.podIP", "10.0.0.5"),
    ("status.podIPs", "10.0.0.5,fd00::5"),
    ("status.hostIP", "192.168.1.10"),
    ("status.hostIPs", "192.168.1.10"),
]


@pytest.mark.parametrize(("path", "expected"), FIELD_REFS)
def test_field_ref_values(path: str, expected: str) -> None:
    assert field_ref_value(downward_pod(), path) == expected


@pytest.mark.parametrize("path", ["spec.containers", "metadata.name['x']", "status.phase"])
def test_unsupported_field_ref_is_a_config_error(path: str) -> None:
    with pytest.raises(EnvError) as err:
        field_ref_value(downward_pod(), path)
    assert err.value.reason == "CreateContainerConfigError"


def test_explicit_ips_override_the_pod_status() -> None:
    assert field_ref_value(downward_pod(), "status.podIP", pod_ips=["10.9.9.9"]) == "10.9.9.9"


def test_env_values_expand_earlier_variables_only() -> None:
    c = container(
        "app",
        env=[
            EnvVar(
                name="NAME",
                value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path="metadata.name")),
            ),
            EnvVar(name="GREETING", value="hello $(NAME) from $(LATER)"),
            EnvVar(name="LATER", value="later"),
            EnvVar(name="ESCAPED", value="$$(NAME)"),
            EnvVar(name="EMPTY"),
        ],
    )
    env = dict(container_env(downward_pod(), c))
    assert env == {
        "NAME": "web-0",
        "GREETING": "hello web-0 from $(LATER)",
        "LATER": "later",
        "ESCAPED": "$(NAME)",
        "EMPTY": "",
    }


def test_later_definition_overrides_value_keeping_position() -> None:
    c = container(
        "app",
        env=[EnvVar(name="A", value="1"), EnvVar(name="B", value="2"), EnvVar(name="A", value="3")],
    )
    assert container_env(make_pod(), c) == [("A", "3"), ("B", "2")]


def resource(ref: str, divisor: str | None = None, **res: dict[str, str]) -> tuple[Pod, Container]:
    c = container(
        "app",
        resources=ResourceRequirements(**res),  # type: ignore[arg-type]
        env=[
            EnvVar(
                name="R",
                value_from=EnvVarSource(
                    resource_field_ref=ResourceFieldSelector(resource=ref, divisor=divisor)
                ),
            )
        ],
    )
    return make_pod([c]), c


RESOURCES = [
    ("limits.cpu", None, {"limits": {"cpu": "250m"}}, "1"),
    ("limits.cpu", "1m", {"limits": {"cpu": "250m"}}, "250"),
    ("requests.cpu", "1m", {"requests": {"cpu": "1.5"}}, "1500"),
    ("limits.memory", None, {"limits": {"memory": "128Mi"}}, "134217728"),
    ("limits.memory", "1Mi", {"limits": {"memory": "128Mi"}}, "128"),
    ("limits.memory", "1Mi", {"limits": {"memory": "100M"}}, "96"),
    ("requests.memory", None, {}, "0"),
    ("limits.cpu", None, {}, "4"),  # unset limit: the node's allocatable
    ("limits.memory", "1Gi", {}, "8"),
]


@pytest.mark.parametrize(("ref", "divisor", "res", "expected"), RESOURCES)
def test_resource_field_ref(
    ref: str, divisor: str | None, res: dict[str, dict[str, str]], expected: str
) -> None:
    pod, c = resource(ref, divisor, **res)
    env = dict(container_env(pod, c, node_allocatable={"cpu": "4", "memory": "8Gi"}))
    assert env["R"] == expected


def test_job_completion_index_comes_from_the_annotation() -> None:
    pod = make_pod()
    pod.metadata.annotations["batch.kubernetes.io/job-completion-index"] = "3"
    c = container("app", command=["echo", "$(JOB_COMPLETION_INDEX)"])
    env = container_env(pod, c)
    assert ("JOB_COMPLETION_INDEX", "3") in env
    assert expand_command_and_args(c, env) == (["echo", "3"], [])
    assert ("JOB_COMPLETION_INDEX", "3") not in container_env(make_pod(), c)


def test_config_map_sources() -> None:
    c = container(
        "app",
        env_from=[EnvFromSource(prefix="CM_", config_map_ref=ConfigMapEnvSource(name="cfg"))],
        env=[
            EnvVar(
                name="K",
                value_from=EnvVarSource(
                    config_map_key_ref=ConfigMapKeySelector(name="cfg", key="b")
                ),
            )
        ],
    )
    env = dict(container_env(make_pod(), c, config_maps={"cfg": {"a": "1", "b": "2"}}))
    assert env == {"CM_a": "1", "CM_b": "2", "K": "2"}
    with pytest.raises(EnvError, match='configmap "cfg" not found'):
        container_env(make_pod(), c)
    missing_key = container(
        "app",
        env=[
            EnvVar(
                name="K",
                value_from=EnvVarSource(
                    config_map_key_ref=ConfigMapKeySelector(name="cfg", key="z")
                ),
            )
        ],
    )
    with pytest.raises(EnvError, match="couldn't find key z in ConfigMap default/cfg"):
        container_env(make_pod(), missing_key, config_maps={"cfg": {}})
    optional = container(
        "app",
        env=[
            EnvVar(
                name="K",
                value_from=EnvVarSource(
                    config_map_key_ref=ConfigMapKeySelector(name="cfg", key="z", optional=True)
                ),
            )
        ],
    )
    assert container_env(make_pod(), optional) == []


def test_command_and_args_are_expanded_with_the_final_env() -> None:
    c = container(
        "app",
        command=["sh", "-c", "echo $(MSG) $$(MSG) $(NOPE)"],
        args=["$(MSG)"],
        env=[EnvVar(name="MSG", value="hi")],
    )
    assert expand_command_and_args(c, container_env(make_pod(), c)) == (
        ["sh", "-c", "echo hi $(MSG) $(NOPE)"],
        ["hi"],
    )


ARGV = [
    # (command, args, ENTRYPOINT, CMD, argv)
    ([], [], ["/entry"], ["--default"], ["/entry", "--default"]),
    (["/bin/app"], [], ["/entry"], ["--default"], ["/bin/app"]),
    ([], ["--flag"], ["/entry"], ["--default"], ["/entry", "--flag"]),
    (["/bin/app"], ["--flag"], ["/entry"], ["--default"], ["/bin/app", "--flag"]),
    ([], [], [], ["nginx", "-g"], ["nginx", "-g"]),
    ([], ["echo", "hi"], [], ["sh"], ["echo", "hi"]),
]


@pytest.mark.parametrize(("command", "args", "entry", "cmd", "argv"), ARGV)
def test_command_and_args_combine_with_image_entrypoint_and_cmd(
    command: list[str], args: list[str], entry: list[str], cmd: list[str], argv: list[str]
) -> None:
    assert effective_argv(command, args, entry, cmd) == argv


def test_nothing_to_run_is_an_error() -> None:
    with pytest.raises(EnvError, match="no command specified"):
        effective_argv([], [], [], [])


def test_container_env_overrides_image_env() -> None:
    merged = merge_image_env(["PATH=/bin", "A=image"], [("A", "pod"), ("B", "x")])
    assert merged == [("PATH", "/bin"), ("A", "pod"), ("B", "x")]
