"""exec probes: the command runs inside the container through the
node-agent's exec service (`ExecRequest` over the bus); this module only
turns the answer into an Outcome (kubelet pkg/probe/exec): exit 0 is
success, another exit code a failure whose message is the command's
combined output (at most 10 KiB), a timeout a failure `command "<cmd>" timed
out`, and an exec that could not be run at all an errored run.

The runner is injected (the service passes a bus request); so this module
stays free of NATS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from podmodel.node_api import ExecRequest, ExecResponse

from services.prober.logic.thresholds import SUCCESS, Outcome

ExecRunner = Callable[[ExecRequest], Awaitable[ExecResponse]]
MAX_OUTPUT = 10 * 1024
REPLY_GRACE = 2.0
"""Extra seconds we wait for the node-agent's answer beyond the command's
own timeout (the node-agent enforces that one)."""


def timed_out_message(command: list[str]) -> str:
    return f'command "{" ".join(command)}" timed out'


def exec_outcome(request: ExecRequest, response: ExecResponse) -> Outcome:
    if response.error:
        return Outcome("unknown", response.error)
    if response.timed_out:
        return Outcome("failure", timed_out_message(request.command))
    output = (response.stdout + response.stderr)[:MAX_OUTPUT]
    if response.exit_code == 0:
        return SUCCESS
    return Outcome("failure", output)


async def probe_exec(runner: ExecRunner, request: ExecRequest) -> Outcome:
    try:
        async with asyncio.timeout(request.timeout_s + REPLY_GRACE):
            response = await runner(request)
    except TimeoutError:
        return Outcome("failure", timed_out_message(request.command))
    except Exception as exc:  # the exec service is unreachable or refused
        return Outcome("unknown", f"exec failed: {exc}")
    return exec_outcome(request, response)
