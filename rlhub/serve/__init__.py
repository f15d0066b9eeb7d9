"""Environments as services: serve one environment over HTTP, and use a served one like a local one.

    rlhub serve countdown-v0 --port 8700                      # the server (loopback by default)
    env = rlhub.make("http://127.0.0.1:8700/countdown-v0")   # a client env, used like a local one

The protocol (``PROTOCOL``) is documented in docs/serve.md.
"""

from rlhub.serve.protocol import PROTOCOL

__all__ = ["PROTOCOL"]
