"""Where podctl connects and how it authenticates.

Server, first found: `--server`, PODBUS_NATS_URL, NATS_URL, the
`endpoints.env` that `podbus up` writes under the state directory, then
`podbus up`'s default port. Credentials (flags win over the environment; the
environment names are the nats CLI's, as servicekit.runner uses them):
user/password (NATS_USER, NATS_PASSWORD), token (NATS_TOKEN), a creds file
(NATS_CREDS), TLS (NATS_CA, NATS_CERT, NATS_KEY). Resolution is pure;
`ssl_context` builds the context from files.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "nats://127.0.0.1:14222"


def state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME") or Path.home()) / ".local" / "state"
    )
    return Path(base) / "podbus"


def read_endpoints(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an endpoints.env; missing file: empty."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value
    return out


@dataclass
class Connection:
    server: str
    source: str  # where the server came from, for error messages
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for servicekit.bus.Bus.connect."""
        options: dict[str, Any] = {}
        if self.user:
            options.update(user=self.user, password=self.password or "")
        if self.token:
            options["token"] = self.token
        if self.creds:
            options["creds"] = self.creds
        if self.ca or self.cert or self.insecure or self.server.startswith("tls://"):
            options["tls"] = ssl_context(self)
        return options


def resolve(
    *,
    server: str | None,
    env: Mapping[str, str],
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    creds: str | None = None,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    insecure: bool = False,
) -> Connection:
    if server:
        chosen, source = server, "--server"
    elif env.get("PODBUS_NATS_URL"):
        chosen, source = env["PODBUS_NATS_URL"], "PODBUS_NATS_URL"
    elif env.get("NATS_URL"):
        chosen, source = env["NATS_URL"], "NATS_URL"
    else:
        endpoints_file = state_dir(env) / "endpoints.env"
        endpoints = read_endpoints(endpoints_file)
        if endpoints.get("NATS_URL"):
            chosen, source = endpoints["NATS_URL"], str(endpoints_file)
        else:
            chosen, source = DEFAULT_SERVER, "the default (podbus up)"
    return Connection(
        server=chosen,
        source=source,
        user=user or env.get("NATS_USER") or None,
        password=password if password is not None else env.get("NATS_PASSWORD"),
        token=token or env.get("NATS_TOKEN") or None,
        creds=creds or env.get("NATS_CREDS") or None,
        ca=ca or env.get("NATS_CA") or None,
        cert=cert or env.get("NATS_CERT") or None,
        key=key or env.get("NATS_KEY") or None,
        insecure=insecure,
    )


def ssl_context(conn: Connection) -> ssl.SSLContext:
    """TLS for NATS: the CA to trust (else the system's), a client
    certificate when the server verifies clients."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=conn.ca)
    if conn.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conn.cert:
        context.load_cert_chain(conn.cert, conn.key)
    return context


def from_environment(**kwargs: Any) -> Connection:
    return resolve(env=os.environ, **kwargs)
