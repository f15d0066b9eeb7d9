"""Evaluate through any OpenAI-compatible chat endpoint: a local ``vllm serve`` or a hosted API.

The endpoint applies its own chat template, so this works on text: each example's chat prompt goes
to ``/v1/chat/completions``, and the reply is scored by the environment. Tool environments run the
same episode loop as training (``env.respond`` answers each turn's tool calls until a final answer
or ``max_turns``); ``max_new_tokens`` budgets the whole episode, as in :func:`rlhub.generation.rollout.run_episodes`.

Requests run concurrently in threads; 429s, 5xx answers and timeouts are retried with exponential
backoff (honouring ``Retry-After``), and anything else stops the run with a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from rlhub.errors import ConfigError, RLHubError
from rlhub.generation import Sampling
from rlhub.generation._http import HTTPError, api_root, request_json
from rlhub.types import Example, Message, last_assistant_text

TOOL_ROLES = ("tool", "user")


@dataclass
class ChatSample:
    """One sampled episode: what the model wrote and, in tool envs, what the environment answered."""

    prompt_index: int
    messages: list[Message] = field(default_factory=list)
    completion_tokens: int | None = 0
    """Tokens the model generated over the episode, as the endpoint reports them (None: not reported)."""
    finished: bool = True
    """False when a turn was cut at the token budget."""
    state: Any = None
    """The tool env's ``EpisodeState`` (None for single-turn envs)."""

    @property
    def text(self) -> str:
        return last_assistant_text(self.messages)

    @property
    def output(self) -> str | list[Message]:
        """What the environment scores: the transcript for tool envs, the reply otherwise."""
        return self.messages if self.state is not None else self.text


class ChatClient:
    """``POST /v1/chat/completions`` with retries.

    Args:
        base_url: The endpoint, e.g. ``http://localhost:8000/v1`` (``/v1`` is added if missing).
        model: The served model name (``GET /v1/models`` lists them).
        api_key: Sent as a bearer token (keep it in an environment variable, never on a command line).
        timeout: Seconds to wait for one answer.
        retries: Further attempts after a 429, a 5xx or a timeout.
        backoff: First wait between attempts in seconds; it doubles each time.
        tool_role: How tool results are sent: ``"tool"`` messages (vLLM and chat templates that render
            them, as in training) or ``"user"`` messages (endpoints that accept tool messages only as
            answers to structured tool calls, such as OpenAI's).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 1.0,
        tool_role: str = "tool",
    ):
        if tool_role not in TOOL_ROLES:
            raise ConfigError(f"tool_role must be one of {TOOL_ROLES}, got {tool_role!r}")
        self.url = f"{api_root(base_url)}/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.tool_role = tool_role

    def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float = 1.0,
        tools: list[dict] | None = None,
    ) -> tuple[str, str | None, int | None]:
        """One reply to ``messages``: ``(text, finish_reason, completion_tokens)``."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [self._wire(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if tools:  # rendered by the endpoint's chat template; calls stay in the text, as in training
            payload |= {"tools": tools, "tool_choice": "none"}
        try:
            answer = request_json(
                "POST",
                self.url,
                payload,
                timeout=self.timeout,
                headers=self.headers,
                retries=self.retries,
                backoff=self.backoff,
            )
        except HTTPError as exc:
            raise RLHubError(self._explain(exc)) from None
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise RLHubError(f"{self.url} answered without choices[0].message: {str(answer)[:200]}") from None
        usage = answer.get("usage") or {}
        return text, choice.get("finish_reason"), usage.get("completion_tokens")

    def _wire(self, message: Message) -> dict[str, Any]:
        if message["role"] != "tool" or self.tool_role == "tool":
            return dict(message)
        return {"role": "user", "content": f"Result of {message.get('name', 'the tool')}: {message['content']}"}

    def _explain(self, exc: HTTPError) -> str:
        if exc.status in (401, 403):
            return f"{exc}; set the endpoint's API key in the variable --api-key-env names (default OPENAI_API_KEY)"
        if exc.status == 404:
            return f"{exc}; check --base-url and that --model is a name the endpoint serves (GET /v1/models)"
        if exc.status == 400 and "tool" in exc.body:
            return f"{exc}; this endpoint rejects tool messages: pass --tool-role user"
        return str(exc)


def run_episode(
    client: ChatClient,
    env,
    example: Example,
    prompt_index: int,
    sampling: Sampling,
) -> ChatSample:
    """One sample: a single reply, or for tool envs turns until a final answer, ``max_turns`` or the budget
    (``sampling.max_new_tokens`` over the episode)."""
    from rlhub.env.multiturn import EpisodeState

    multi_turn = env.multi_turn
    sample = ChatSample(prompt_index, state=EpisodeState(example=example) if multi_turn else None)
    tools = getattr(env, "template_tools", None)
    try:
        while True:
            used = sample.completion_tokens or 0
            if used >= sampling.max_new_tokens:
                sample.finished = False
                break
            text, finish_reason, tokens = client.complete(
                example.prompt + sample.messages,
                max_tokens=sampling.max_new_tokens - used,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                tools=tools,
            )
            sample.completion_tokens = None if tokens is None or sample.completion_tokens is None else used + tokens
            sample.messages.append({"role": "assistant", "content": text})
            sample.finished = finish_reason != "length"
            if not multi_turn:
                break
            replies = env.respond(example.prompt + sample.messages, sample.state)
            if sample.state.done or not sample.finished:
                break
            sample.messages += replies
    finally:  # however the episode ends, it keeps no resources
        if sample.state is not None:
            sample.state.close()
    return sample


def run_chat(
    client: ChatClient,
    env,
    examples: list[Example],
    k: int,
    sampling: Sampling,
    *,
    concurrency: int = 16,
    on_sample: Callable[[ChatSample], None] | None = None,
) -> list[ChatSample]:
    """``k`` samples per example, ``concurrency`` at a time; grouped like ``rollout()`` (example 0's first).

    ``on_sample`` is called (in this thread) as each sample completes, e.g. to advance a progress bar.
    """
    jobs = [(i, j) for i in range(len(examples)) for j in range(k)]
    samples: list[ChatSample | None] = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        futures = {
            pool.submit(run_episode, client, env, examples[i], i, sampling): slot for slot, (i, _) in enumerate(jobs)
        }
        for future in as_completed(futures):
            samples[futures[future]] = future.result()
            if on_sample is not None:
                on_sample(samples[futures[future]])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return samples
