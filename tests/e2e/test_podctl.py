"""podctl as a user drives it: a subprocess against real services (started by
`podbus up` on the session's real nats-server and redis-server, simulated
runtime), checking what it prints and its exit codes.

The tests share one cluster and run in file order: apply first, delete last.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ServerHandle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NODE = "e2e-node"
NEEDED = ["workload_controller", "scheduler", "node_agent"]


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def lines(self) -> list[list[str]]:
        return [line.split() for line in self.out.splitlines()]

    def __repr__(self) -> str:
        return f"<rc={self.code} out={self.out!r} err={self.err!r}>"


class Cluster:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def podctl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "clients.podctl.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        return Result(proc)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Result:
        r = self.podctl(*args, stdin=stdin, timeout=timeout)
        assert r.code == 0, r
        return r


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _wipe(nats_url: str, redis_url: str) -> None:
    import nats
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()

    async def drop_streams() -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            for info in await js.streams_info():
                await js.delete_stream(info.config.name)
        finally:
            await nc.close()

    asyncio.run(drop_streams())


@pytest.fixture(scope="module")
def cluster(
    nats_server: ServerHandle, redis_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    missing = [s for s in NEEDED if importlib.util.find_spec(f"services.{s}.__main__") is None]
    if missing:
        pytest.skip(f"services not built yet: {', '.join(missing)}")
    nats_server.start()
    redis_server.start()
    _wipe(nats_server.url, redis_server.url)
    tmp = tmp_path_factory.mktemp("podctl-e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "PODBUS_"))}
    env.update(
        NATS_URL=nats_server.url,
        REDIS_URL=redis_server.url,
        XDG_STATE_HOME=str(tmp / "state"),
        PODBUS_LOG_LEVEL="WARNING",
    )
    log = open(tmp / "podbus-up.log", "w")  # noqa: SIM115 - closed below
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.podctl.podbus_cli",
            "up",
            "--plain",
            "--runtime",
            "simulated",
            "--node-name",
            NODE,
            "--data-dir",
            str(tmp / "data"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    client_env = {k: v for k, v in env.items() if k not in ("NATS_URL", "REDIS_URL")}
    client_env["PODBUS_NATS_URL"] = nats_server.url
    c = Cluster(client_env)
    try:
        wait_until(
            lambda: "Ready" in c.podctl("get", "node", NODE).out,
            timeout=30,
            what=f"node {NODE} Ready",
        )
        yield c
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        log.close()
        if up.returncode != 0:
            print((tmp / "podbus-up.log").read_text())


def test_apply_examples_prints_what_it_did(cluster: Cluster) -> None:
    r = cluster.ok("apply", "-f", str(EXAMPLES))
    assert sorted(r.out.splitlines()) == [
        "configmap/node-logger created",
        "daemonset.apps/node-logger created",
        "deployment.apps/web created",
        "job.batch/countdown created",
        "pod/init-demo created",
        "statefulset.apps/db created",
    ]
    again = cluster.ok("apply", "-f", str(EXAMPLES / "web-deployment.yaml"))
    assert again.out == "deployment.apps/web unchanged\n"
    manifest = (EXAMPLES / "countdown-job.yaml").read_text()
    assert cluster.ok("apply", "-f", "-", stdin=manifest).out == "job.batch/countdown unchanged\n"


def test_wait_for_the_examples_and_read_the_tables(cluster: Cluster) -> None:
    cluster.ok("wait", "--for=condition=Available", "deploy/web", "--timeout=40s")
    cluster.ok("wait", "--for=condition=Complete", "job/countdown", "--timeout=40s")
    cluster.ok("wait", "--for=condition=Ready", "pod/init-demo", "--timeout=40s")
    cluster.ok("rollout", "status", "statefulset/db", "--timeout=40s")
    cluster.ok("rollout", "status", "ds/node-logger", "--timeout=40s")
    logger = cluster.ok("get", "ds", "node-logger").lines()
    assert logger[0] == [
        "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"
    ]  # fmt: skip
    assert logger[1][:7] == ["node-logger", "1", "1", "1", "1", "1", "<none>"]

    pods = cluster.ok("get", "pods")
    assert pods.lines()[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    by_name = {row[0]: row for row in pods.lines()[1:]}
    web = [row for name, row in by_name.items() if name.startswith("web-")]
    assert len(web) == 3 and all(row[1:4] == ["1/1", "Running", "0"] for row in web), by_name
    assert by_name["init-demo"][1:3] == ["2/2", "Running"]
    job_pod = [row for name, row in by_name.items() if name.startswith("countdown-")]
    assert job_pod and job_pod[0][1:3] == ["0/1", "Completed"]
    assert by_name["db-0"][1:3] == ["1/1", "Running"]

    wide = cluster.ok("get", "po", "init-demo", "-o", "wide")
    assert wide.out.splitlines()[0].split()[5:] == [
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert wide.lines()[1][6] == NODE

    deploy = cluster.ok("get", "deploy")
    assert deploy.lines() == [
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["web", "3/3", "3", "3", deploy.lines()[1][4]],
    ]
    assert cluster.ok("get", "jobs").lines()[1][:3] == ["countdown", "Complete", "1/1"]
    assert cluster.ok("get", "sts", "db").lines()[1][:2] == ["db", "2/2"]
    rs = cluster.ok("get", "rs", "-l", "app=web").lines()
    assert rs[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"] and rs[1][1:4] == ["3", "3", "3"]
    nodes = cluster.ok("get", "no").lines()
    assert nodes[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1][:2] == [NODE, "Ready"]
    names = cluster.ok("get", "deploy,sts", "-o", "name").out.split()
    assert names == ["deployment.apps/web", "statefulset.apps/db"]
    columns = cluster.ok(
        "get", "deploy,sts", "-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas"
    ).lines()
    assert columns == [["NAME", "REPLICAS"], ["web", "3"], ["db", "2"]]
    by_time = cluster.ok("get", "po", "--sort-by=.metadata.creationTimestamp", "-o", "name")
    stamps = [
        cluster.ok("get", ref, "-o", "jsonpath={.metadata.creationTimestamp}").out
        for ref in by_time.out.split()
    ]
    assert stamps == sorted(stamps) and len(stamps) > 3
    bad = cluster.podctl("get", "po", "--sort-by=.spec.nothing")
    assert bad.code == 1 and "couldn't find any field with path" in bad.err
    everything = cluster.ok("get", "all").out
    headers = [line.split()[0] for line in everything.splitlines() if line.startswith("NAME ")]
    # pods, daemonsets, deployments, replicasets, statefulsets, jobs
    assert len(headers) == 6, everything
    for ref in (
        "pod/init-demo",
        "daemonset.apps/node-logger",
        "deployment.apps/web",
        "statefulset.apps/db",
        "job.batch/countdown",
    ):
        assert f"\n{ref} " in everything, everything
    events = cluster.ok("get", "ev").lines()
    assert events[0] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(row[2] == "Scheduled" and row[3] == "pod/init-demo" for row in events[1:])
    assert "kind: Pod" in cluster.ok("get", "pod", "init-demo", "-o", "yaml").out
    assert '"kind": "List"' in cluster.ok("get", "pods", "-o", "json").out


def test_user_mistakes_exit_one_with_a_clear_line(cluster: Cluster) -> None:
    r = cluster.podctl("get", "pod", "nope")
    assert (r.code, r.err) == (1, 'Error from server (NotFound): pods "nope" not found\n')
    r = cluster.podctl("get", "widgets")
    assert r.code == 1 and 'resource type "widgets"' in r.err and "Traceback" not in r.err
    r = cluster.podctl("get", "pods", "-n", "empty")
    assert (r.code, r.err) == (0, "No resources found in empty namespace.\n")
    bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers: [{name: a}]\n"
    r = cluster.podctl("apply", "-f", "-", stdin=bad)
    assert r.code == 1 and "spec.containers[0].image" in r.err and "Traceback" not in r.err
    r = cluster.podctl("--server", "nats://127.0.0.1:1", "get", "pods")
    assert r.code == 1 and "cannot connect to NATS at nats://127.0.0.1:1" in r.err


def test_describe_shows_containers_conditions_and_events(cluster: Cluster) -> None:
    text = cluster.ok("describe", "pod", "init-demo").out
    for needle in ("Name:", "Init Containers:", "  log-shipper:", "Containers:", "Conditions:"):
        assert needle in text
    assert text.splitlines()[0].split() == ["Name:", "init-demo"]
    assert "Events:" in text and "Scheduled" in text and "Started" in text
    dep = cluster.ok("describe", "deploy/web").out
    assert "Replicas:" in dep and "NewReplicaSet:" in dep and "ScalingReplicaSet" in dep


def test_logs_exec_and_debug(cluster: Cluster) -> None:
    logs = cluster.ok("logs", "init-demo")
    assert "app: writing to /shared/app.log" in logs.out
    assert 'Defaulted container "app"' in logs.err
    assert "shipping" in cluster.ok("logs", "init-demo", "-c", "log-shipper").out
    assert "liftoff" in cluster.ok("logs", "job/countdown").out
    ex = cluster.ok("exec", "init-demo", "-c", "app", "--", "echo", "hello")
    assert "echo hello" in ex.out  # the simulated runtime answers with the command it ran
    r = cluster.podctl("exec", "init-demo", "-c", "nope", "--", "true")
    assert r.code == 1 and "container nope is not valid for pod init-demo" in r.err

    dbg = cluster.ok("debug", "init-demo", "--image=busybox", "--target=app", "-c", "dbg")
    assert dbg.out == ""
    path = "jsonpath={.spec.ephemeralContainers[0].targetContainerName}"
    assert cluster.ok("get", "pod", "init-demo", "-o", path).out == "app"
    shell = cluster.ok(
        "debug", "init-demo", "-i", "--image=busybox", "-c", "dbg2", "--", "sh", stdin="ls /\n"
    )
    assert "Defaulting" not in shell.err and "ls /" in shell.out


def test_scale_and_rollouts(cluster: Cluster) -> None:
    assert (
        cluster.ok("scale", "deploy", "web", "--replicas=4").out == "deployment.apps/web scaled\n"
    )
    status = cluster.ok("rollout", "status", "deploy/web", "--timeout=40s")
    assert status.out.splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert cluster.ok("rollout", "restart", "deploy/web").out == "deployment.apps/web restarted\n"
    cluster.ok("rollout", "status", "deploy/web", "--timeout=40s")
    history = cluster.ok("rollout", "history", "deploy/web").out.splitlines()
    assert history[:4] == [
        "deployment.apps/web ",
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "2         <none>",
    ]
    assert cluster.ok("rollout", "undo", "deploy/web").out == "deployment.apps/web rolled back\n"
    cluster.ok("rollout", "status", "deploy/web", "--timeout=40s")
    assert cluster.ok("get", "deploy", "web").lines()[1][1] == "4/4"
    assert cluster.ok("rollout", "pause", "deploy/web").out == "deployment.apps/web paused\n"
    r = cluster.podctl("rollout", "pause", "deploy/web")
    assert r.code == 1 and "already paused" in r.err
    assert cluster.ok("rollout", "resume", "deploy/web").out == "deployment.apps/web resumed\n"


def test_waits_time_out_with_kubectl_exit_code(cluster: Cluster) -> None:
    r = cluster.podctl("wait", "--for=condition=Failed", "job/countdown", "--timeout=1s")
    assert r.code == 1
    assert r.err.endswith("error: timed out waiting for the condition on jobs/countdown\n")
    r = cluster.podctl("rollout", "status", "deploy/web", "--timeout=1s", "-n", "nowhere")
    assert r.code == 1 and 'deployments.apps "web" not found' in r.err


def test_labels_annotations_and_cordon(cluster: Cluster) -> None:
    assert cluster.ok("label", "pod", "init-demo", "tier=demo").out == "pod/init-demo labeled\n"
    r = cluster.podctl("label", "pod", "init-demo", "tier=other")
    assert r.code == 1 and "'tier' already has a value (demo), and --overwrite is false" in r.err
    cluster.ok("label", "pod/init-demo", "tier=other", "--overwrite")
    assert cluster.ok("get", "pods", "-l", "tier=other", "-o", "name").out == "pod/init-demo\n"
    assert (
        cluster.ok("annotate", "deploy", "web", "owner=e2e").out
        == "deployment.apps/web annotated\n"
    )
    assert cluster.ok("cordon", NODE).out == f"node/{NODE} cordoned\n"
    assert cluster.ok("get", "node", NODE).lines()[1][1] == "Ready,SchedulingDisabled"
    assert cluster.ok("uncordon", NODE).out == f"node/{NODE} uncordoned\n"


def test_config_maps_and_secrets_created_listed_and_described(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "app.conf").write_text("port=8080\n")
    (tmp_path / "env").write_text("# comment\nMODE=prod\n")
    assert (
        cluster.ok(
            "create", "configmap", "app", "--from-literal=greeting=hello",
            f"--from-file={tmp_path / 'app.conf'}", f"--from-env-file={tmp_path / 'env'}",
        ).out
        == "configmap/app created\n"
    )  # fmt: skip
    assert cluster.ok(
        "create", "secret", "generic", "db", "--from-literal=password=s3cr3t"
    ).out == ("secret/db created\n")
    rows = cluster.ok("get", "cm,secret").lines()
    assert rows[1][:2] == ["configmap/app", "3"], rows
    assert rows[-1][:3] == ["secret/db", "Opaque", "1"], rows
    cm = json.loads(cluster.ok("get", "cm", "app", "-o", "json").out)
    assert cm["data"] == {"app.conf": "port=8080\n", "greeting": "hello", "MODE": "prod"}
    described = cluster.ok("describe", "secret", "db").out
    assert "password:  6 bytes" in described and "s3cr3t" not in described
    r = cluster.podctl("create", "configmap", "bad", "--from-literal=novalue")
    assert r.code == 1 and "invalid literal source novalue, expected key=value" in r.err
    assert cluster.ok("delete", "cm", "app").out == 'configmap "app" deleted\n'
    assert cluster.ok("delete", "secret", "db").out == 'secret "db" deleted\n'


DAEMON_SET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent-probe}
spec:
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec:
      containers: [{name: probe, image: busybox}]
"""


def test_daemon_set_runs_on_the_node_and_drain_respects_it(cluster: Cluster) -> None:
    cluster.ok("apply", "-f", "-", stdin=DAEMON_SET)
    r = cluster.ok("rollout", "status", "ds/node-agent-probe", "--timeout=60s", timeout=90)
    assert r.out.splitlines()[-1] == 'daemon set "node-agent-probe" successfully rolled out'
    row = cluster.ok("get", "ds", "node-agent-probe").lines()[1]
    assert row[:6] == ["node-agent-probe", "1", "1", "1", "1", "1"], row
    pod = cluster.ok("get", "pods", "-l", "app=probe", "-o", "wide").lines()[1]
    assert pod[2] == "Running" and NODE in pod, pod
    r = cluster.podctl("drain", NODE, "--force", "--timeout=5s")
    assert r.code == 1 and r.err.startswith(
        f'error: unable to drain node "{NODE}" due to error: cannot delete DaemonSet-managed '
        "Pods (use --ignore-daemonsets to ignore): default/node-agent-probe-"
    ), r
    cluster.ok("uncordon", NODE)
    cluster.ok("delete", "ds", "node-agent-probe", "--wait")


CRON_JOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Berlin
  jobTemplate:
    spec:
      template:
        metadata: {annotations: {sim.podbus.io/exit-after: "1s"}}
        spec:
          containers: [{name: report, image: busybox, command: [date]}]
          restartPolicy: OnFailure
"""


def test_cron_jobs_apply_list_and_reject_bad_schedules(cluster: Cluster) -> None:
    assert cluster.ok("apply", "-f", "-", stdin=CRON_JOB).out == "cronjob.batch/nightly created\n"
    rows = cluster.ok("get", "cj").lines()
    assert rows[0] == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST",
        "SCHEDULE",
        "AGE",
    ]
    assert rows[1][:8] == ["nightly", "0", "3", "*", "*", "*", "Europe/Berlin", "False"], rows
    described = cluster.ok("describe", "cronjob", "nightly").out
    assert "Concurrency Policy:" in described and "Allow" in described
    bad = CRON_JOB.replace('"0 3 * * *"', '"0 25 * * *"').replace("nightly", "broken")
    r = cluster.podctl("apply", "-f", "-", stdin=bad)
    assert r.code == 1 and 'spec.schedule: Invalid value: "0 25 * * *"' in r.err, r
    made = cluster.ok("create", "job", "nightly-now", "--from=cronjob/nightly")
    assert made.out == "job.batch/nightly-now created\n"
    cluster.ok("wait", "--for=condition=Complete", "job/nightly-now", "--timeout=40s")
    job = json.loads(cluster.ok("get", "job", "nightly-now", "-o", "json").out)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    cluster.ok("delete", "cj", "nightly")
    wait_until(
        lambda: cluster.podctl("get", "job", "nightly-now").code == 1, what="the Job collected"
    )


def test_delete_waits_and_cascades(cluster: Cluster) -> None:
    assert cluster.ok("delete", "pod", "init-demo").out == 'pod "init-demo" deleted\n'
    assert cluster.podctl("get", "pod", "init-demo").code == 1
    r = cluster.ok("delete", "deploy", "web", "--timeout=40s")
    assert r.out == 'deployment.apps "web" deleted\n'
    wait_until(
        lambda: cluster.podctl("get", "pods", "-l", "app=web").err.startswith("No resources found"),
        what="the web pods to go (background cascade)",
    )
    r = cluster.podctl("wait", "--for=delete", "pod", "-l", "app=web", "--timeout=1s")
    assert (r.code, r.err) == (1, "error: no matching resources found\n")
    r = cluster.ok("delete", "-f", str(EXAMPLES / "db-statefulset.yaml"), "--cascade=orphan")
    assert r.out == 'statefulset.apps "db" deleted\n'
    orphans = cluster.ok("get", "pods", "-l", "app=db", "-o", "name").out.split()
    assert orphans == ["pod/db-0", "pod/db-1"]
    out = cluster.ok("delete", "pod", "-l", "app=db", "--grace-period=0", "--force").out
    assert out == 'pod "db-0" deleted\npod "db-1" deleted\n'
    r = cluster.podctl("delete", "job", "nope")
    assert (r.code, r.err) == (1, 'Error from server (NotFound): jobs.batch "nope" not found\n')
    assert cluster.ok("delete", "job", "nope", "--ignore-not-found").out == ""
