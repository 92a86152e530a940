"""The node-agent's `oci` runtime: real containers through runc, a local
image store, a network namespace and IP per pod."""
