"""Multi-turn environments: the model calls tools, the environment answers, until a final answer.

The episode runs through the same gymnasium API as single-turn envs: ``reset`` gives the prompt,
``step(text)`` takes one assistant turn. A turn with ``<tool_call>{"name": ..., "arguments": {...}}
</tool_call>`` blocks (several = parallel calls) gets the tool results as the next observation; a
turn without calls is the final answer, and the rubric scores the whole transcript. Malformed
calls, unknown tools, bad arguments and tool exceptions become an error message to the model.

Trainers drive episodes through ``respond(messages, state)``, which holds the same logic.

An episode may hold resources (a ``Workspace``, a server connection) on ``EpisodeState.resources``;
``respond`` releases them when the episode ends, and every driver (``step``/``reset``/``close``, the
trainers' rollouts, the OpenAI-compatible and TRL runners, ``rlhub serve``) calls ``state.close()`` on
every other way out, an exception included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

from rlhub.env.base import EnvConfig, TextEnv
from rlhub.env.tools import ToolBox, ToolStats
from rlhub.errors import ConfigError
from rlhub.types import Example, Message, last_assistant_text


@dataclasses.dataclass
class MultiTurnConfig(EnvConfig):
    max_turns: int = 4
    """Assistant turns per episode; the episode is truncated after the last."""
    tool_prompt: str = "system"
    """Where the tool schemas go: "system" (listed in the system prompt; any model) or "template"
    (passed as ``tools=`` to the tokenizer's chat template, for templates that render tools)."""

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.max_turns <= 32:
            raise ConfigError(f"max_turns must be in 1..32, got {self.max_turns}")
        if self.tool_prompt not in ("system", "template"):
            raise ConfigError(f"tool_prompt must be 'system' or 'template', got {self.tool_prompt!r}")


@dataclasses.dataclass
class EpisodeState:
    """What an episode has done so far (trainers sum these into metrics)."""

    turns: int = 0
    done: bool = False
    truncated: bool = False
    tools: ToolStats = dataclasses.field(default_factory=ToolStats)
    format_errors: int = 0
    example: Example | None = None
    """The episode's example, for tools whose answers depend on it (``MultiTurnEnv.toolbox_for``)."""
    resources: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack, repr=False, compare=False)
    """What the episode holds open, released by ``close()`` (last acquired first): for instance
    ``state.resources.enter_context(Workspace(files))`` in ``MultiTurnEnv.episode_toolbox``."""

    def close(self) -> None:
        """Release the episode's resources; idempotent. Called when the episode ends, however it ends."""
        self.resources.close()


CALL_FORMAT = (
    "To call a tool, write one block per call: "
    '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call> '
    "and stop; the results come back in the next message. When you know the answer, reply without tool calls."
)


class MultiTurnEnv(TextEnv):
    """Base class of tool-using environments; subclasses give ``tool_functions`` and data and rubric."""

    Config = MultiTurnConfig
    multi_turn = True
    acts_through_tools = False
    """True when the episode's tool calls do the work the reward measures (edits to a workspace), not its final
    answer: ``rlhub validate``'s built-in probes then replace the whole transcript rather than its last turn."""

    def __init__(self, render_mode: str | None = None, **config: Any):
        super().__init__(render_mode=render_mode, **config)
        self.toolbox = self.build_toolbox()
        self._messages: list[Message] = []
        self._state = EpisodeState()

    def tool_functions(self) -> list:
        raise NotImplementedError

    def build_toolbox(self) -> ToolBox:
        """The env's toolbox (``self.toolbox``, whose schemas the model is shown); override to return a
        ``ToolBox`` subclass, e.g. one whose tools come from an MCP server."""
        return ToolBox(self.tool_functions())

    @property
    def template_tools(self) -> list[dict] | None:
        """Tool schemas for the chat template's ``tools=`` argument, when ``tool_prompt="template"``."""
        return self.toolbox.schemas if self.config.tool_prompt == "template" else None

    def turn_reward(self, messages: list[Message], replies: list[Message], state: EpisodeState) -> float:
        """A reward for one intermediate turn, returned by ``step``; 0 unless a subclass shapes turns.

        rlhub's trainers optimize the episode's final reward, or with ``algorithm.credit: turn`` every turn's
        return-to-go of these rewards (``rlhub.trainers.turn_credit``); served envs send them in each step.
        """
        return 0.0

    def toolbox_for(self, example: Example | None) -> ToolBox:
        """The tools of one episode; override when a tool reads the example (e.g. its documents)."""
        return self.toolbox

    def episode_toolbox(self, state: EpisodeState) -> ToolBox:
        """The tools of one episode, asked for on each turn; override to bind tools to per-episode resources.

        Register what the tools hold on ``state.resources`` so that it is released with the episode, and
        return the same toolbox on each call of an episode (keep it on the state or in the stack).
        """
        return self.toolbox_for(state.example)

    @property
    def system_prompt(self) -> str:
        if self.config.system_prompt is not None:
            return self.config.system_prompt
        if self.config.tool_prompt == "template":
            base = f"You are a helpful assistant with tools. {CALL_FORMAT}"
        else:
            tools = "\n".join(json.dumps(schema) for schema in self.toolbox.schemas)
            base = f"You are a helpful assistant with these tools:\n{tools}\n{CALL_FORMAT}"
        return base if self.config.prompt_style == "user" else f"{base} {self.instruction}"

    # --- the episode logic, shared by step() and trainers ---------------------------------------
    def respond(self, messages: list[Message], state: EpisodeState) -> list[Message]:
        """The environment's reply to the last assistant message; sets ``state.done`` at the end."""
        from rlhub.rewards.tool_calls import parse_tool_calls_verbose

        state.turns += 1
        calls, errors = parse_tool_calls_verbose(messages[-1]["content"])
        if not calls and not errors:
            state.done = True
            state.close()
            return []
        replies = []
        toolbox = self.episode_toolbox(state)
        for call in calls or []:
            result = toolbox.call(call.name, dict(call.arguments), state.tools)
            replies.append({"role": "tool", "name": result.name, "content": result.content})
        for error in errors:
            state.format_errors += 1
            state.tools.errors += 1
            replies.append({"role": "tool", "name": "error", "content": f"error: malformed tool call: {error}"})
        if state.turns >= self.config.max_turns:
            state.done = state.truncated = True
            state.close()
        return replies

    # --- gymnasium API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self._messages = list(self._example.prompt)
        self._state.close()
        self._state = EpisodeState(example=self._example)
        return obs, info

    def close(self) -> None:
        """Release the current episode's resources."""
        self._state.close()
        super().close()

    def step(self, action: str):
        if self._example is None:
            import gymnasium as gym

            raise gym.error.ResetNeeded("call reset() before step()")
        self._messages.append({"role": "assistant", "content": action if isinstance(action, str) else ""})
        replies = self.respond(self._messages, self._state)
        self._messages.extend(replies)
        info = {
            "turns": self._state.turns,
            "tool_calls": self._state.tools.calls,
            "tool_errors": self._state.tools.errors,
        }
        if not self._state.done:
            reward = self.turn_reward(self._messages, replies, self._state)
            return "\n".join(r["content"] for r in replies), reward, False, False, info
        transcript = self._messages[len(self._example.prompt) :]
        score = self.score(transcript, self._example)
        self._last = (action, score)
        info.update(rewards=score.rewards, reward_errors=score.errors, example_id=self._example.id)
        terminated = not self._state.truncated
        return "", score.reward, terminated, self._state.truncated, info

    def score_batch(self, completions, examples) -> list:
        """Score transcripts: the rubric's ``completions`` are the final assistant messages, and each
        function also gets the whole transcript as the ``transcript`` column."""
        finals, columns = [], []
        for transcript, example in zip(completions, examples):
            messages = transcript if isinstance(transcript, list) else [{"role": "assistant", "content": transcript}]
            finals.append(last_assistant_text(messages))
            columns.append({**example.columns(), "transcript": messages})
        return self.rubric.score_batch(finals, columns)

    def gold_transcript(self, example: Example) -> list[Message]:
        """A transcript of assistant and tool messages that earns full marks (for ``rlhub validate``)."""
        raise NotImplementedError

    def gold_completion(self, example: Example) -> list[Message]:
        return self.gold_transcript(example)
