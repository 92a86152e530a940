"""Apply a Pod and a Deployment to podbus with nothing but nats-py and JSON:
shows that any client can talk to the workload-controller's API
(podbus.api.apply, request-reply, JSON in and out). Usage:
`python clients/examples/apply_pod.py [nats-url]`. Exits 1 on an error reply."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import nats

POD = """{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "hello", "labels": {"app": "hello"}},
 "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}"""

DEPLOYMENT = """{"apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "web"},
 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
  "template": {"metadata": {"labels": {"app": "web"}},
   "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}"""


async def main(url: str) -> int:
    nc = await nats.connect(url)
    try:
        for text in (POD, DEPLOYMENT):
            body = json.dumps({"object": json.loads(text)}).encode()
            msg = await nc.request("podbus.api.apply", body, timeout=5)
            reply = json.loads(msg.data)
            if "error" in reply:
                print(f"error: {reply['error']}", file=sys.stderr)
                return 1
            meta = reply["object"]["metadata"]
            verb = "created" if reply.get("created") else "configured"
            print(f"{reply['object']['kind']}/{meta['name']} {verb}")
    finally:
        await nc.close()
    return 0


if __name__ == "__main__":
    target = (
        sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    )
    sys.exit(asyncio.run(main(target)))
