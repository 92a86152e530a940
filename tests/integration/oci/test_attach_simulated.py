"""A node whose runtime has no interactive exec (the simulated one) says so,
and clients fall back: the session is refused as `unsupported`. (Next to
the oci attach tests, though it needs neither root nor runc.)"""

from __future__ import annotations

import pytest
from podmodel.node_api import AttachRequest

from clients.podctl.attach_client import AttachSession, AttachUnsupported
from tests.integration.node_agent_harness import running_agent


async def test_a_simulated_node_answers_unsupported(nats_url: str, redis_url: str) -> None:
    async with running_agent(nats_url, redis_url) as h:
        request = AttachRequest(namespace="default", pod="web", container="app", command=["sh"])
        with pytest.raises(AttachUnsupported, match="no interactive exec"):
            await AttachSession.open(h.nc, "n1", request)
        assert not await AttachSession.supported(h.nc, "n1")
        assert h.agent.attach is not None and not h.agent.attach.sessions
        # no node-agent at all: unsupported too (podctl falls back, then reports)
        assert not await AttachSession.supported(h.nc, "nobody")
