"""NATS credentials from the environment, as nats.connect keyword arguments."""

from __future__ import annotations

from servicekit.runner import nats_connect_options


def test_no_credentials_no_options() -> None:
    assert nats_connect_options({}) == {}


def test_user_token_and_creds_map_to_nats_py_names() -> None:
    env = {"NATS_USER": "u", "NATS_PASSWORD": "p", "NATS_TOKEN": "t", "NATS_CREDS": "/x.creds"}
    assert nats_connect_options(env) == {
        "user": "u",
        "password": "p",
        "token": "t",
        "user_credentials": "/x.creds",
    }
