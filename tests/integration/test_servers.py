"""The test servers are real and restartable."""

import nats
import redis.asyncio as aioredis

from tests.servers import ServerHandle


async def test_nats_jetstream_answers(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    info = await nc.jetstream().account_info()
    assert info.limits is not None
    await nc.close()


async def test_redis_keeps_data_across_restart(redis_url: str, redis_server: ServerHandle) -> None:
    client = aioredis.from_url(redis_url)
    await client.set("k", "v")
    await client.aclose()
    redis_server.restart()
    client = aioredis.from_url(redis_url)
    assert await client.get("k") == b"v"
    await client.aclose()
