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
    """Enough data that loading the append-only file takes a while: the
    restarted server is used at once, so start() must wait until Redis
    serves (it listens, answering -LOADING, before that)."""
    client = aioredis.from_url(redis_url)
    await client.set("k", "v")
    blob = b"x" * 20_000
    for batch in range(10):
        await client.mset({f"bulk:{batch}:{i}": blob for i in range(200)})
    await client.aclose()
    redis_server.restart()
    client = aioredis.from_url(redis_url)
    try:
        assert await client.get("k") == b"v"
        assert await client.get("bulk:9:199") == blob
    finally:
        await client.delete(*[f"bulk:{b}:{i}" for b in range(10) for i in range(200)])
        await client.aclose()
