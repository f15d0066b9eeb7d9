"""The sandboxed env's fast paths keep their behaviour: the server's answers leave in one write each (head and
body together, ``_server.one_write_http_protocol``), whole on keep-alive and on closing connections alike; an inline
server answers scoring requests past FastAPI's routing with the very bytes FastAPI gives, malformed ones included;
and the host still refuses every reward that is not finite or within the bound, however cheaply it checks.

No bubblewrap needed: the hub's server protocol runs in this process, over a recording transport or a unix socket.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from types import SimpleNamespace

import pytest

import rlhub
from rlhub.errors import ConfigError
from rlhub.hub import CapabilityViolation
from rlhub.hub._server import one_write_http_protocol
from rlhub.hub.client import SandboxClient
from rlhub.hub.sandbox import REWARD_BOUND
from rlhub.serve.protocol import encode, example_to_json
from rlhub.serve.server import create_app
from tests.hub_packages import FakeSandbox, unix_server

ENV_ID = "arithmetic-v1"


class RecordingTransport(asyncio.Transport):
    """A connection's transport that keeps each write apart, as the socket's peer would be woken by each."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8700)}.get(name, default)

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def score_body(env, size: int) -> dict:
    examples = env.examples("train", limit=size)
    completions = [env.gold_completion(example) for example in examples]
    return {"completions": completions, "examples": [example_to_json(example) for example in examples]}


def request(body: dict, *, close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST /{ENV_ID}/score HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "")
    return head.encode() + b"\r\n" + data


def parse(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert int(headers["content-length"]) == len(body), "the write does not hold the whole answer"
    return int(lines[0].split()[1]), json.loads(body)


async def exchange(app, requests: list[bytes]) -> RecordingTransport:
    """Each request in turn on one connection of the hub's server protocol; its transport once all are answered."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    transport = RecordingTransport()
    protocol = one_write_http_protocol()(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(transport)
    for index, data in enumerate(requests):
        protocol.data_received(data)
        deadline = time.monotonic() + 30
        while len(transport.writes) <= index and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a write left for a later turn of the loop would arrive now
    return transport


def test_each_answer_leaves_in_one_write_that_holds_all_of_it():
    env = rlhub.make(ENV_ID)
    bodies = [score_body(env, size) for size in (1, 64, 3)]
    app = create_app(lambda: rlhub.make(ENV_ID), ENV_ID, inline=True)
    transport = asyncio.run(exchange(app, [request(body) for body in bodies]))
    assert len(transport.writes) == len(bodies) and not transport.closed
    for body, write in zip(bodies, transport.writes):
        status, answer = parse(write)
        assert status == 200 and [row["rewards"]["correct"] for row in answer["scores"]] == [1.0] * len(
            body["completions"]
        )


def test_an_answer_on_a_closing_connection_is_written_whole_before_it_closes():
    body = score_body(rlhub.make(ENV_ID), 2)
    app = create_app(lambda: rlhub.make(ENV_ID), ENV_ID, inline=True)
    transport = asyncio.run(exchange(app, [request(body, close=True)]))
    (write,) = transport.writes
    assert parse(write)[0] == 200 and transport.closed


@pytest.fixture
def served(tmp_path):
    """The hub's server protocol serving ``ENV_ID`` on a unix socket, as the sandbox's server does."""
    path = str(tmp_path / "env.sock")
    app = create_app(lambda: rlhub.make(ENV_ID), ENV_ID, inline=True)
    with unix_server(path, app, http=one_write_http_protocol()):
        yield SimpleNamespace(path=path, package="rlhub-env-fake", capabilities=SimpleNamespace(cpu_seconds=1))


def test_the_client_scores_many_batches_over_one_kept_connection_to_the_one_write_server(served):
    env = rlhub.make(ENV_ID)
    client = SandboxClient(FakeSandbox(served.path), ENV_ID)
    for size in (1, 64, 1, 64):
        body = score_body(env, size)
        expected = [score.rewards for score in env.score_batch(body["completions"], env.examples("train", size))]
        assert [row["rewards"] for row in client.call("POST", "score", body)["scores"]] == expected
    assert len(client._idle) == 1
    client.close()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, REWARD_BOUND * 1.5, -1e30, "1.0", [1.0]])
def test_a_reward_that_is_not_finite_or_past_the_bound_is_a_violation(value):
    sandbox = FakeSandbox("/nonexistent")
    client = SandboxClient(sandbox, ENV_ID)
    answer = {"scores": [{"rewards": {"correct": 1.0}, "errors": []}, {"rewards": {"correct": value}, "errors": []}]}
    with pytest.raises(CapabilityViolation, match=r"\(reward\): reward 'correct' is"):
        client._check_rewards(answer)
    assert sandbox.stopped


@pytest.mark.parametrize("value", [None, 0, 0.5, -REWARD_BOUND, REWARD_BOUND, True])
def test_a_finite_reward_within_the_bound_passes(value):
    sandbox = FakeSandbox("/nonexistent")
    SandboxClient(sandbox, ENV_ID)._check_rewards({"scores": [{"rewards": {"correct": value}, "errors": []}]})
    assert not sandbox.stopped


async def asgi_post(app, path: str, data: bytes, content_type: bytes = b"application/json") -> tuple[int, bytes]:
    """``data`` POSTed to ``app`` at ``path``; the answer's status and body."""
    headers = [(b"host", b"sandbox"), (b"content-type", content_type), (b"content-length", str(len(data)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http"}
    scope |= {"path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers}
    scope |= {"client": ("127.0.0.1", 50000), "server": ("sandbox", 80)}
    sent = []

    async def receive() -> dict:
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])


def scoring_requests() -> list[tuple[str, bytes]]:
    env = rlhub.make(ENV_ID)
    examples = env.examples("train", limit=3)
    completions = [env.gold_completion(example) for example in examples]
    rows = [example_to_json(example) for example in examples]
    score, rubric = f"/{ENV_ID}/score", f"/{ENV_ID}/rubric"
    return [
        (score, encode({"completions": completions, "examples": rows})),
        (score, encode({"completions": completions[:1], "examples": rows[:1], "unknown": 1})),
        (score, encode({"completions": [], "examples": []})),
        (rubric, encode({"completions": completions, "columns": [{"answer": e.answer} for e in examples]})),
        (score, b"{not json"),
        (score, b""),
        (score, b"[]"),
        (score, b'{"completions": "abc", "examples": []}'),
        (score, encode({"completions": completions, "examples": rows[:2]})),
        (score, encode({"completions": completions[:1], "examples": [{"id": 1}]})),
        (score, encode({"completions": completions[:1], "examples": [5]})),
        (score, encode({"completions": ["x"] * 4097, "examples": rows[:1] * 4097})),
        (rubric, b'{"completions": ["a", "b"], "columns": [{}]}'),
    ]


@pytest.mark.parametrize("index", range(len(scoring_requests())))
def test_an_inline_server_answers_scoring_requests_as_fastapi_does(index):
    path, data = scoring_requests()[index]
    inline = create_app(lambda: rlhub.make(ENV_ID), ENV_ID, inline=True)
    threaded = create_app(lambda: rlhub.make(ENV_ID), ENV_ID)
    assert asyncio.run(asgi_post(inline, path, data)) == asyncio.run(asgi_post(threaded, path, data))
    assert asyncio.run(asgi_post(inline, path, data, b"text/plain")) == asyncio.run(
        asgi_post(threaded, path, data, b"text/plain")
    )


def test_a_config_error_while_scoring_is_answered_400_on_the_inline_path_too():
    def make_env():
        env = rlhub.make(ENV_ID)

        def refuse(completions, examples):
            raise ConfigError("scoring needs a judge; set judge.model")

        env.score_batch = refuse
        return env

    path, data = scoring_requests()[0]
    for inline in (True, False):
        status, body = asyncio.run(asgi_post(create_app(make_env, ENV_ID, inline=inline), path, data))
        assert (status, json.loads(body)) == (400, {"detail": "scoring needs a judge; set judge.model"})
