"""PodInfo: requests as Kubernetes' PodRequests computes them."""

from __future__ import annotations

from podmodel.pod import Container, ResourceRequirements

from services.scheduler.pod_info import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    PodInfo,
    more_important,
    normalized_image_name,
)
from tests.unit.scheduler.builders import pod


def _c(name: str, cpu: str, restart_policy: str | None = None) -> Container:
    return Container(
        name=name,
        resources=ResourceRequirements(requests={"cpu": cpu}),
        restart_policy=restart_policy,
    )


def test_app_containers_add_up_and_init_containers_take_the_max() -> None:
    p = pod(cpu="100m", memory=None)
    p.spec.containers.append(_c("b", "200m"))
    p.spec.init_containers = [_c("init", "500m")]
    assert PodInfo.of(p).cpu == 500
    p.spec.init_containers = [_c("init", "250m")]
    assert PodInfo.of(p).cpu == 300


def test_sidecars_run_alongside_and_stack_under_later_init_containers() -> None:
    p = pod(cpu="100m", memory=None)
    p.spec.init_containers = [_c("sidecar", "200m", "Always"), _c("init", "1")]
    # app 100m + sidecar 200m = 300m; init step = 1000m + sidecar 200m = 1200m
    assert PodInfo.of(p).cpu == 1200


def test_overhead_is_added() -> None:
    p = pod(cpu="100m", memory=None)
    p.spec.overhead = {"cpu": "50m"}
    assert PodInfo.of(p).cpu == 150


def test_limits_without_requests_count_as_requests() -> None:
    p = pod(cpu=None, memory=None)
    p.spec.containers[0].resources.limits = {"cpu": "1", "memory": "1Gi"}
    pi = PodInfo.of(p)
    assert (pi.cpu, pi.memory) == (1000, 1 << 30)


def test_scoring_defaults_fill_only_missing_requests() -> None:
    pi = PodInfo.of(pod(cpu=None, memory=None))
    assert (pi.cpu, pi.memory) == (0, 0)
    assert (pi.nonzero_cpu, pi.nonzero_memory) == (
        DEFAULT_MILLI_CPU_REQUEST,
        DEFAULT_MEMORY_REQUEST,
    )
    zero = PodInfo.of(pod(cpu="0", memory="0"))
    assert (zero.nonzero_cpu, zero.nonzero_memory) == (0, 0)


def test_extended_resources_are_scalars() -> None:
    pi = PodInfo.of(pod(extra={"example.com/gpu": "2"}))
    assert pi.scalars == (("example.com/gpu", 2),)


def test_host_ports_default_to_every_ip_and_tcp() -> None:
    assert PodInfo.of(pod(host_ports=[8080])).host_ports == (("0.0.0.0", "TCP", 8080),)


def test_image_names_get_the_latest_tag() -> None:
    assert normalized_image_name("busybox") == "busybox:latest"
    assert normalized_image_name("reg:5000/app") == "reg:5000/app:latest"
    assert normalized_image_name("app:1.2") == "app:1.2"


def test_priority_comes_from_the_builtin_class_when_not_defaulted() -> None:
    p = pod()
    p.spec.priority_class_name = "system-node-critical"
    assert PodInfo.of(p).priority == 2000001000


def test_more_important_is_higher_priority_then_earlier_start() -> None:
    high = PodInfo.of(pod("a", priority=10))
    low_early = PodInfo.of(pod("b", priority=1, start_time="2024-01-01T00:00:00Z"))
    low_late = PodInfo.of(pod("c", priority=1, start_time="2024-01-02T00:00:00Z"))
    low_unstarted = PodInfo.of(pod("d", priority=1))
    assert more_important(high, low_early)
    assert more_important(low_early, low_late)
    assert more_important(low_late, low_unstarted)
    assert not more_important(low_unstarted, low_late)


def test_bound_to_copies_without_touching_the_original() -> None:
    pi = PodInfo.of(pod())
    b = pi.bound_to("n1")
    assert (b.node_name, pi.node_name) == ("n1", "")
    assert b.cpu == pi.cpu
