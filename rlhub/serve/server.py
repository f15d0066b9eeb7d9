"""``rlhub serve``: one environment behind an HTTP API (FastAPI on uvicorn), see docs/serve.md.

Routes live under ``/<env_id>``; ``/health`` answers without a token. Scoring returns each reward
function's raw value, so a client applies its own weights exactly as a local rubric does. Episodes
(``reset``/``step``) run in sessions, each on an env instance of its own; a session idle for
``session_ttl`` seconds is dropped.
"""

import functools
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter

from rlhub.errors import ConfigError, RLHubError
from rlhub.serve.protocol import PROTOCOL, STEP_INFO_KEYS, STEP_TURN_REWARDS, example_from_json, example_to_json

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_BATCH = 4096
MAX_EXAMPLES = 100_000
_DICT_JSON = TypeAdapter(dict)
"""Encodes an answer to the bytes FastAPI makes of a route's ``-> dict`` (a NaN or inf reward becomes null),
without the validated copy and the worker-thread hop it makes first."""


class ExamplesRequest(BaseModel):
    split: str = "train"
    limit: int | None = Field(default=None, ge=0, le=MAX_EXAMPLES)
    seed: int = 0


class ScoreRequest(BaseModel):
    completions: list[Any] = Field(max_length=MAX_BATCH)
    examples: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


class RubricRequest(BaseModel):
    completions: list[Any] = Field(max_length=MAX_BATCH)
    columns: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


class GoldRequest(BaseModel):
    example: dict[str, Any]


class ResetRequest(BaseModel):
    seed: int | None = None
    split: str = "train"
    limit: int | None = Field(default=None, ge=1, le=MAX_EXAMPLES)
    example: dict[str, Any] | None = None


class StepRequest(BaseModel):
    action: str


def create_app(
    make_env: Callable[[], Any],
    env_id: str,
    *,
    token: str | None = None,
    session_ttl: float = 600.0,
    max_sessions: int = 1024,
    max_body_bytes: int = MAX_BODY_BYTES,
    inline: bool = False,
):
    """The ASGI app serving ``make_env()`` as ``env_id``.

    Args:
        make_env: Makes one env instance (one serves examples and scores; each session gets its own).
        env_id: The id routes are served under.
        token: If set, every route but ``/health`` needs ``Authorization: Bearer <token>``.
        session_ttl: Seconds of inactivity after which a session is dropped.
        max_sessions: Open sessions at most; more get 429 until some end or expire.
        max_body_bytes: Larger request bodies get 413.
        inline: Run each route on the event loop rather than in a worker thread. Only for a server that handles
            one request at a time anyway (an env package's sandbox): it saves two thread hand-offs per request,
            while a slow route then holds every other request back.

    Returns:
        A FastAPI application.
    """
    env = make_env()
    sessions = _Sessions(make_env, ttl=session_ttl, limit=max_sessions)

    async def authorized(request: Request) -> None:  # async: checking a header needs no worker thread
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def handler(function):
        """A route's function; with ``inline``, an async one that calls it, which FastAPI runs on the loop."""
        if not inline:
            return function

        @functools.wraps(function)
        async def run_inline(*args, **kwargs):
            return function(*args, **kwargs)

        return run_inline

    app = FastAPI(title=f"rlhub serve {env_id}", version=PROTOCOL)
    routes = APIRouter(prefix=f"/{env_id}", dependencies=[Depends(authorized)])

    @app.exception_handler(ConfigError)
    async def bad_input(request: Request, exc: ConfigError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/health")
    @handler
    def health() -> dict:
        return {"status": "ok", "protocol": PROTOCOL, "env_id": env_id}

    @routes.get("/info")
    @handler
    def info() -> dict:
        return {
            "protocol": PROTOCOL,
            "env_id": env_id,
            "config": asdict(env.config),
            "rubric": env.rubric.weights,
            "multi_turn": bool(env.multi_turn),
            "system_prompt": env.system_prompt,
        }

    @routes.post("/examples")
    @handler
    def examples(body: ExamplesRequest) -> dict:
        return {"examples": [example_to_json(e) for e in env.examples(body.split, body.limit, body.seed)]}

    def env_scores(completions: list, examples: list[dict]) -> Response:
        """The env's own scoring (``env.score_batch``: what a multi-turn env does to transcripts included)."""
        return _scores(env.score_batch(completions, [_example(e) for e in examples]))

    def rubric_scores(completions: list, columns: list[dict]) -> Response:
        """The rubric's functions on completions and reward columns as given (``rubric.score_batch``)."""
        return _scores(env.rubric.score_batch(completions, columns))

    @routes.post("/score")
    @handler
    def score(body: ScoreRequest) -> Response:
        if len(body.completions) != len(body.examples):
            raise HTTPException(422, f"{len(body.completions)} completions but {len(body.examples)} examples")
        return env_scores(body.completions, body.examples)

    @routes.post("/rubric")
    @handler
    def rubric(body: RubricRequest) -> Response:
        if len(body.completions) != len(body.columns):
            raise HTTPException(422, f"{len(body.completions)} completions but {len(body.columns)} column rows")
        return rubric_scores(body.completions, body.columns)

    @routes.post("/gold")
    @handler
    def gold(body: GoldRequest) -> dict:
        return {"completion": env.gold_completion(_example(body.example))}

    @routes.post("/sessions")
    @handler
    def reset(body: ResetRequest) -> dict:
        options: dict[str, Any] = {"split": body.split}
        if body.limit is not None:
            options["limit"] = body.limit
        if body.example is not None:
            options["example"] = _example(body.example)
        session_id, session = sessions.open()
        try:
            with session.lock:
                observation, info = session.env.reset(seed=body.seed, options=options)
                session.last_used = time.monotonic()
        except BaseException:
            sessions.close(session_id)
            raise
        return {"session_id": session_id, "observation": observation, "info": _reset_info(info)}

    @routes.post("/sessions/{session_id}/step")
    @handler
    def step(session_id: str, body: StepRequest) -> dict:
        session = sessions.get(session_id)
        with session.lock:
            observation, reward, terminated, truncated, info = session.env.step(body.action)
            session.last_used = time.monotonic()
            session.turn_rewards.append(float(reward))
            turn_rewards = list(session.turn_rewards)
        return {
            "observation": observation,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "info": {k: v for k, v in info.items() if k in STEP_INFO_KEYS},
            STEP_TURN_REWARDS: turn_rewards,
        }

    @routes.delete("/sessions/{session_id}")
    @handler
    def close(session_id: str) -> dict:
        sessions.get(session_id)
        sessions.close(session_id)
        return {"closed": session_id}

    def _example(data: dict):
        try:
            return example_from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPException(422, f"an example needs id, prompt, answer and info: {exc!r}") from None

    def _scores(scores) -> Response:
        answer = {"scores": [{"rewards": s.rewards, "errors": s.errors} for s in scores]}
        return Response(_DICT_JSON.dump_json(answer), media_type="application/json")

    def _reset_info(info: dict) -> dict:
        out = {k: v for k, v in info.items() if k != "example"}
        if "example" in info:
            out["example"] = example_to_json(info["example"])
        return out

    if inline and token is None:
        scorers = {f"/{env_id}/score": ("examples", env_scores), f"/{env_id}/rubric": ("columns", rubric_scores)}
        app.add_middleware(_PlainScoring, scorers=scorers)
    app.add_middleware(_BodyLimit, max_body_bytes=max_body_bytes)  # added last, so it runs first
    app.include_router(routes)
    app.state.sessions = sessions
    return app


class _BodyLimit:
    """ASGI middleware: a request whose Content-Length is over ``max_body_bytes`` (or not a number) gets 413.

    A plain ASGI layer rather than ``@app.middleware``: that one costs a task and a stream per request.
    """

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                answer = JSONResponse({"detail": f"request body over {self.max_body_bytes} bytes"}, status_code=413)
                return await answer(scope, receive, send)
        await self.app(scope, receive, send)


class _PlainScoring:
    """ASGI middleware of an inline server: a well-formed scoring request is answered here, as its route would answer
    it, without FastAPI's routing, dependencies and body model (0.1 ms a request, a fifth of a one-completion call to
    a sandboxed env). Any other request, a malformed scoring request included, goes on to FastAPI as it came.

    Args:
        app: The rest of the app.
        scorers: Per path, the body's key for the rows beside ``completions`` and the function that scores them.
    """

    def __init__(self, app, scorers: dict[str, tuple[str, Callable[[list, list[dict]], Response]]]) -> None:
        self.app, self.scorers = app, scorers

    async def __call__(self, scope, receive, send) -> None:
        scorer = self.scorers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if scorer is None or (b"content-type", b"application/json") not in scope["headers"]:
            return await self.app(scope, receive, send)
        chunks, message = [], {"more_body": True}
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                return  # the client has gone: no one to answer
            chunks.append(message.get("body", b""))
        data = b"".join(chunks)
        answer = self._answer(data, *scorer)
        if answer is not None:
            return await answer(scope, receive, send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": data, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _answer(data: bytes, rows_key: str, scores: Callable[[list, list[dict]], Response]) -> Response | None:
        """The answer to a body that the route's model accepts as it is; None for any other body."""
        try:
            body = json.loads(data)
        except ValueError:
            return None
        completions, rows = (body.get("completions"), body.get(rows_key)) if isinstance(body, dict) else (None, None)
        if not (isinstance(completions, list) and isinstance(rows, list)) or len(completions) != len(rows):
            return None
        if len(rows) > MAX_BATCH or not all(isinstance(row, dict) for row in rows):
            return None
        try:
            return scores(completions, rows)
        except HTTPException:
            return None  # a malformed example: FastAPI answers it
        except ConfigError as exc:  # as the app's handler answers it
            return JSONResponse({"detail": str(exc)}, status_code=400)


class _Session:
    def __init__(self, env) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.turn_rewards: list[float] = []
        """The reward of each step of the session's episode so far (protocol.STEP_TURN_REWARDS)."""


class _Sessions:
    """Open episodes by id; idle ones are dropped on the next request that touches the table."""

    def __init__(self, make_env: Callable[[], Any], ttl: float, limit: int) -> None:
        self._make_env = make_env
        self._ttl = ttl
        self._limit = limit
        self._open: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def _expire(self) -> None:
        cutoff = time.monotonic() - self._ttl
        for key in [key for key, s in self._open.items() if s.last_used < cutoff]:
            self._open.pop(key).env.close()  # its episode's resources (a workspace's sandbox) go with it

    def open(self) -> tuple[str, _Session]:
        with self._lock:
            self._expire()
            if len(self._open) >= self._limit:
                raise HTTPException(429, f"{self._limit} sessions are open; close some or wait for idle ones to expire")
            session_id = secrets.token_urlsafe(16)
            self._open[session_id] = session = _Session(self._make_env())
        return session_id, session

    def get(self, session_id: str) -> _Session:
        with self._lock:
            self._expire()
            session = self._open.get(session_id)
            if session is None:
                raise HTTPException(404, f"no session {session_id!r} (it ended, expired or never existed)")
            session.last_used = time.monotonic()
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            session = self._open.pop(session_id, None)
        if session is not None:
            session.env.close()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._open)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    env_id: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    token: str | None = None,
    session_ttl: float = 600.0,
    log_level: str = "info",
) -> None:
    """Serve the registered env ``env_id`` until interrupted (what ``rlhub serve`` runs).

    Raises:
        RLHubError: ``host`` is not a loopback address and no token is set.
    """
    import uvicorn

    from rlhub.env.registry import get_spec

    if not is_loopback(host) and not token:
        raise RLHubError(
            f"refusing to serve on {host} without a token: anyone who reaches it could use the env; "
            "set --token (or $RLHUB_ENV_TOKEN), or serve on 127.0.0.1"
        )
    spec = get_spec(env_id)
    app = create_app(spec.make, spec.id, token=token, session_ttl=session_ttl)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class BackgroundServer:
    """Serve an app on a uvicorn server in a thread of this process (tests, notebooks).

    Binds ``host`` on a free port; ``url`` is ``http://host:port``. A context manager: leaving it
    stops the server.
    """

    def __init__(self, app, host: str = "127.0.0.1") -> None:
        import socket

        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RLHubError(f"the env server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __exit__(self, *exc_info) -> None:
        self.stop()
