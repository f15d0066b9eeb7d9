"""Train on any rlhub environment with TRL's ``GRPOTrainer``.

:func:`to_dataset` turns an env's examples into a dataset in TRL's conversational format (a ``prompt``
column of chat messages plus the env's reward columns), :func:`reward_funcs` wraps the env's rubric
functions as TRL reward functions, and :func:`reward_weights` gives their weights for
``GRPOConfig.reward_weights``::

    from trl import GRPOConfig, GRPOTrainer
    from rlhub.integrations.trl import reward_funcs, reward_weights, to_dataset

    env = rlhub.make("arithmetic-v1", difficulty=3)
    trainer = GRPOTrainer(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        reward_funcs=reward_funcs(env),
        args=GRPOConfig(output_dir="out", reward_weights=reward_weights(env)),
        train_dataset=to_dataset(env, "train", limit=1000),
    )

TRL logs each reward as ``rewards/<name>/mean`` under the rubric's names (``correct``, ``format``), plus
``rewards/<name>/errors``: the share of completions the function raised on (each of those scores 0.0).

Dataset columns must survive Arrow: a column whose values Arrow would change (dicts with varying
keys, mixed types) is stored as JSON text and listed in the ``rlhub_json_columns`` column; the reward
wrappers decode it again, so rubric functions always see the values ``Example.columns()`` holds.

Multi-turn (tool-using) envs train through GRPOTrainer's ``environment_factory``:
:func:`environment_factory` gives a class whose public methods are the env's tools, and the reward
wrappers score the whole transcript (TRL's completion holds the assistant turns and tool results)::

    env = rlhub.make("calculator-v1")
    trainer = GRPOTrainer(
        model=...,  # a tokenizer whose chat template TRL can parse tool calls for (e.g. Qwen's)
        reward_funcs=reward_funcs(env),
        args=GRPOConfig(..., reward_weights=reward_weights(env), max_tool_calling_iterations=env.config.max_turns - 1),
        train_dataset=to_dataset(env),
        environment_factory=environment_factory(env),
    )
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rlhub.env.base import TextEnv
from rlhub.env.multiturn import EpisodeState, MultiTurnEnv
from rlhub.env.registry import make
from rlhub.env.tools import ToolBox
from rlhub.errors import ConfigError
from rlhub.rewards import Rubric
from rlhub.serve.client import EnvServerUnreachable, RemoteEnv, RemoteRubric
from rlhub.types import Example, Message, last_assistant_text

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

JSON_COLUMNS = "rlhub_json_columns"
"""The dataset column naming, per row, the columns stored as JSON text."""

RESERVED_COLUMNS = frozenset(
    {"prompt", "completion", "completion_ids", "prompts", "completions", "trainer_state", "log_extra", "log_metric"}
    | {"environment", "environments", "image", "images", JSON_COLUMNS}
)
"""Names GRPOTrainer gives a meaning of its own (reward keyword arguments, env routing, images)."""

EXAMPLE_ID = "example_id"
"""The dataset column holding ``Example.id`` for multi-turn envs, read by :func:`environment_factory`."""

REASONING_FIELDS = ("reasoning_content", "thinking")
"""Message fields where TRL's response parsers put the text they cut out of ``<think>...</think>``."""


# ---------------------------------------------------------------------------------------------------
# Reward functions.
# ---------------------------------------------------------------------------------------------------


class EnvReward:
    """One rubric function of an rlhub env, called as a TRL reward function.

    TRL calls ``fn(prompts=..., completions=..., completion_ids=..., trainer_state=..., **columns)``
    with one list entry per completion. The wrapper decodes JSON-stored columns, puts back the
    ``<think>`` block that TRL's response parsers move into a separate message field, and scores
    through a one-function :class:`~rlhub.rewards.Rubric`, so a function that raises, returns the wrong
    length or a non-finite value scores 0.0 and never stops training. ``None`` ("not applicable")
    passes through; TRL leaves those completions out of that reward.

    Instances pickle as the env's id (or class) and config and rebuild the rubric on first use, as
    TRL's async GRPO trainer needs to send reward functions to a spawned process.

    Attributes:
        __name__: The rubric's name for the function; TRL logs ``rewards/<__name__>/mean``.
        weight: The rubric's weight for the function.
    """

    def __init__(self, env: TextEnv, name: str):
        self.__name__ = name
        self.weight = env.rubric.weights[name]
        self.multi_turn = bool(env.multi_turn)
        served = getattr(env, "url", None)  # a served env is rebuilt from its URL, its config is the server's
        self._env_source = (served, {}) if served else (env.env_id or type(env), dataclasses.asdict(env.config))
        self._rubric: Rubric | None = _one_function_rubric(env, name)

    @property
    def rubric(self) -> Rubric:
        """The one-function rubric that scores, rebuilt from the env's id or class after unpickling."""
        if self._rubric is None:
            source, config = self._env_source
            env = make(source, **config) if isinstance(source, str) else source(**config)
            self._rubric = _one_function_rubric(env, self.__name__)
        return self._rubric

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        environments = kwargs.pop("environments", None)
        try:
            rows = _rows(kwargs, n)
            completions = [_with_reasoning(c) for c in completions]
            if self.multi_turn:
                completions, rows = _transcript_columns(completions, rows, environments)
            scores = self.rubric.score_batch(completions, rows)
        except EnvServerUnreachable:
            raise  # a served env that is gone is not a reward of 0: stop with the error that names its URL
        except Exception as exc:  # malformed trainer input, not model output: still never stop training
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("reward %r could not score the batch (%s); scoring 0", self.__name__, reason)
            scores = None
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and n:
            failed = n if scores is None else sum(bool(s.errors) for s in scores)
            log_metric(f"rewards/{self.__name__}/errors", failed / n)
        if scores is None:
            return [0.0] * n
        return [s.rewards[self.__name__] for s in scores]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_rubric": None}

    def __repr__(self) -> str:
        source = self._env_source[0]
        label = source if isinstance(source, str) else source.__name__
        return f"EnvReward({label!r}, {self.__name__!r}, weight={self.weight:g})"


def _one_function_rubric(env: TextEnv, name: str) -> Rubric:
    if isinstance(env.rubric, RemoteRubric):
        return env.rubric.only(name)  # scored on the server, whose failures reach the caller
    item = next(r for r in env.rubric.items if r.name == name)
    return Rubric({name: (item.fn, 1.0)})


def _rows(kwargs: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """TRL's per-completion keyword lists as one dict per completion, JSON-stored columns decoded.

    Only lists with one entry per completion are columns; ``trainer_state``, ``log_extra`` and
    ``log_metric`` are for the wrapper, not for rubric functions.
    """
    columns = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == n}
    rows = [{k: v[i] for k, v in columns.items()} for i in range(n)]
    for row in rows:
        for name in row.pop(JSON_COLUMNS, None) or ():
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def _transcript_columns(
    completions: list[Any], rows: list[dict[str, Any]], environments: Sequence[Any] | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Multi-turn scoring as ``MultiTurnEnv.score_batch`` does it: the final assistant text is the completion,
    the whole transcript goes in the ``transcript`` column.

    TRL's completion with tools is the transcript (assistant turns and the tool messages TRL appended). A
    completion without tool messages, from an :func:`environment_factory` environment that ran tools (a
    plain-text completion), gets the environment's tool messages before its final turn.
    """
    finals, columns = [], []
    for i, (completion, row) in enumerate(zip(completions, rows)):
        messages = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        environment = environments[i] if environments is not None and i < len(environments) else None
        recorded = getattr(environment, "tool_messages", None) if isinstance(environment, RLHubEnvironment) else None
        if recorded and not any(isinstance(m, dict) and m.get("role") == "tool" for m in messages):
            messages = [*recorded, *messages]
        finals.append(last_assistant_text(messages))
        columns.append({**row, "transcript": messages})
    return finals, columns


def _with_reasoning(completion: Any) -> Any:
    """A chat completion with any parsed-out reasoning put back as ``<think>...</think>`` before the content.

    When the tokenizer has a response template (some ship one; TRL adds one for known chat templates when
    training with tools), TRL's ``parse_response`` moves the ``<think>`` block out of ``content`` into a
    field of its own; rlhub's format rewards grade the whole text.
    """
    if not isinstance(completion, list):
        return completion
    messages = []
    for message in completion:
        if isinstance(message, dict):
            reasoning = next((r for f in REASONING_FIELDS if isinstance(r := message.get(f), str) and r), "")
            content = message.get("content") or ""
            if reasoning and isinstance(content, str):
                message = {**message, "content": f"<think>{reasoning}</think>\n{content}"}
        messages.append(message)
    return messages


def _env(env_or_id: TextEnv | str, config: dict[str, Any]) -> TextEnv:
    if isinstance(env_or_id, str):
        return make(env_or_id, **config)
    if not isinstance(env_or_id, (TextEnv, RemoteEnv)):
        raise ConfigError(f"expected an rlhub env or env id, got {type(env_or_id).__name__}")
    if config:
        raise ConfigError(
            f"config overrides {sorted(config)} go with an env id, e.g. reward_funcs('arithmetic-v1', difficulty=3); "
            "an env you built already has its config"
        )
    return env_or_id


def reward_funcs(env_or_id: TextEnv | str, **config: Any) -> list[EnvReward]:
    """The env's rubric functions as TRL ``GRPOTrainer`` reward functions, in rubric order.

    Args:
        env_or_id: An rlhub env, a registered env id such as ``"arithmetic-v1"``, or a served env's URL.
        **config: Config overrides, with an env id only.

    Returns:
        One :class:`EnvReward` per rubric function, named as in the rubric; pass
        :func:`reward_weights` as ``GRPOConfig.reward_weights`` to weigh them as the env does.

    Example:
        >>> fns = reward_funcs("arithmetic-v1")
        >>> [f.__name__ for f in fns]
        ['correct', 'format']
        >>> completion = [{"role": "assistant", "content": "<think>2 + 2</think>\\n<answer>4</answer>"}]
        >>> [f(completions=[completion], answer=["4"]) for f in fns]
        [[1.0], [1.0]]
    """
    env = _env(env_or_id, config)
    return [EnvReward(env, name) for name in env.rubric.names]


def reward_weights(env_or_id: TextEnv | str, **config: Any) -> list[float]:
    """The env's rubric weights, aligned with :func:`reward_funcs` (for ``GRPOConfig.reward_weights``).

    Args:
        env_or_id: An rlhub env, or a registered env id.
        **config: Config overrides, with an env id only (``format_weight`` changes the weights).

    Returns:
        One weight per reward function; 0 means logged, not optimized.

    Example:
        >>> reward_weights("arithmetic-v1"), reward_weights("arithmetic-v1", format_weight=0.0)
        ([1.0, 0.1], [1.0, 0.0])
    """
    env = _env(env_or_id, config)
    return [env.rubric.weights[name] for name in env.rubric.names]


# ---------------------------------------------------------------------------------------------------
# Datasets.
# ---------------------------------------------------------------------------------------------------


def to_dataset(
    env_or_id: TextEnv | str, split: str = "train", limit: int | None = None, seed: int = 0, **config: Any
) -> Dataset:
    """An env's examples as a dataset in TRL's conversational format.

    Args:
        env_or_id: An rlhub env, or a registered env id.
        split: ``"train"`` or ``"test"``.
        limit: The most examples; ``None`` takes the split's default size (procedural envs) or every record.
        seed: Which examples (procedural envs) or their order (dataset envs); see ``TextEnv.examples``.
        **config: Config overrides, with an env id only.

    Returns:
        A ``datasets.Dataset`` with a ``prompt`` column of chat messages and one column per reward
        column (``answer`` and the info fields). Columns Arrow would alter are stored as JSON text and
        named in a ``rlhub_json_columns`` column, which :func:`reward_funcs` decodes. Multi-turn envs
        also get an ``example_id`` column (``Example.id``), which :func:`environment_factory` reads.

    Raises:
        ConfigError: An info field uses a name GRPOTrainer reserves, or holds values neither Arrow
            nor JSON can store.

    Example:
        >>> ds = to_dataset("countdown-v0", limit=2)
        >>> ds.column_names
        ['prompt', 'answer', 'numbers', 'target', 'solution']
        >>> ds[0]["prompt"][-1]["role"], type(ds[0]["numbers"][0])
        ('user', <class 'int'>)
    """
    from datasets import Dataset

    env = _env(env_or_id, config)
    examples = env.examples(split, limit=limit, seed=seed)
    rows = [ex.columns() for ex in examples]
    names = list(dict.fromkeys(k for row in rows for k in row))
    reserved = sorted(set(names) & RESERVED_COLUMNS)
    if reserved:
        raise ConfigError(
            f"{env.env_id or type(env).__name__}: reward column(s) {reserved} clash with names GRPOTrainer reserves; "
            f"rename those Example.info fields (reserved: {sorted(RESERVED_COLUMNS)})"
        )
    data: dict[str, list] = {"prompt": [ex.prompt for ex in examples]}
    if env.multi_turn:
        if EXAMPLE_ID in names:
            raise ConfigError(
                f"{env.env_id or type(env).__name__}: reward column {EXAMPLE_ID!r} clashes with the column to_dataset "
                "adds for multi-turn envs (the example's id); rename that Example.info field"
            )
        data[EXAMPLE_ID] = [ex.id for ex in examples]
    encoded = []
    for name in names:
        values = [row.get(name) for row in rows]
        if _arrow_keeps(values):
            data[name] = values
        else:
            data[name] = [_json(v, name, env) for v in values]
            encoded.append(name)
    if encoded:
        data[JSON_COLUMNS] = [encoded] * len(examples)
    return Dataset.from_dict(data)


def _arrow_keeps(values: list) -> bool:
    """Whether Arrow stores ``values`` as one column and gives back exactly the same Python values and types."""
    import pyarrow as pa

    try:
        back = pa.array(values).to_pylist()
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return False
    return _identical(back, values)


def _identical(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _json(value: Any, name: str, env: TextEnv) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{env.env_id or type(env).__name__}: reward column {name!r} holds {type(value).__name__} values that "
            f"neither Arrow nor JSON can store ({exc}); make Example.info values JSON-serializable"
        )


# ---------------------------------------------------------------------------------------------------
# Multi-turn envs: GRPOTrainer's environment_factory.
# ---------------------------------------------------------------------------------------------------


class RLHubEnvironment:
    """One rollout's environment for TRL's ``GRPOTrainer(environment_factory=...)``; base of the classes
    :func:`environment_factory` builds.

    TRL makes instances with no arguments and calls ``reset(**row)`` with the episode's dataset row before
    each rollout. Every public method of the built class is a tool of the env (TRL lists the class's
    functions and renders their signatures and docstrings as tool schemas); a call runs the tool of this
    episode's toolbox (``MultiTurnEnv.episode_toolbox(state)``), so tools that read the example, such as
    retrieval's ``search``, see this episode's data. Calls never raise: unknown tools, bad arguments and
    tool exceptions come back as ``"error: ..."`` text for the model, as in rlhub's own episodes, and are
    counted in ``state.tools``.

    Attributes:
        env: The rlhub env (shared by all instances of the class).
        example: The episode's example, rebuilt from the dataset row by ``reset``.
        state: The episode's counts: ``state.tools.calls``, ``state.tools.errors``, ``state.tools.per_tool``.
        tool_messages: The tool results of the episode, as ``{"role": "tool", "name", "content"}`` messages.
    """

    env: MultiTurnEnv

    def __init__(self) -> None:
        self.example: Example | None = None
        self.state = EpisodeState()
        self.tool_messages: list[Message] = []
        self._toolbox: ToolBox | None = None

    def reset(self, **row: Any) -> str | None:
        """Start an episode on the example of a :func:`to_dataset` row; the prompt is already in the row."""
        self.example = _example_from_row(row)
        self.state.close()  # the previous episode's resources
        self.state = EpisodeState(example=self.example)
        self.tool_messages = []
        self._toolbox = self.env.episode_toolbox(self.state)
        return None

    def __del__(self) -> None:
        # TRL has no end-of-episode hook: the next reset, or this, releases the last episode's resources.
        state = getattr(self, "state", None)
        if state is not None:
            state.close()

    def _call(self, name: str, signature: inspect.Signature, args: tuple, kwargs: dict[str, Any]) -> str:
        if self._toolbox is None:
            raise RuntimeError(f"{type(self).__name__}.reset() must run before its tools")
        arguments = dict(kwargs)
        if args:
            try:
                arguments = dict(signature.bind(*args, **kwargs).arguments)
            except TypeError as exc:
                arguments = {**kwargs, **{f"<positional {i}>": a for i, a in enumerate(args)}}
                log.debug("tool %s got bad positional arguments: %s", name, exc)
        result = self._toolbox.call(name, arguments, self.state.tools)
        self.tool_messages.append({"role": "tool", "name": name, "content": result.content})
        return result.content

    def __repr__(self) -> str:
        example = self.example.id if self.example is not None else None
        return f"{type(self).__name__}(example={example!r}, tool_calls={self.state.tools.calls})"


def _example_from_row(row: dict[str, Any]) -> Example:
    """The ``Example`` a :func:`to_dataset` row came from (JSON-stored columns decoded)."""
    row = dict(row)
    for name in row.pop(JSON_COLUMNS, None) or ():
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    example_id = row.pop(EXAMPLE_ID, None)
    prompt = row.pop("prompt", None) or []
    answer = row.pop("answer", None)
    info = {k: v for k, v in row.items() if k not in RESERVED_COLUMNS}
    return Example(id="" if example_id is None else str(example_id), prompt=prompt, answer=answer, info=info)


def _tool_method(name: str, fn: Callable) -> Callable:
    """A method named, documented and typed as the tool ``fn``, that calls this episode's tool of that name.

    It takes any arguments (so bad ones reach the toolbox and come back as an error message) but shows
    ``fn``'s signature, which is what TRL and transformers read to build the tool's schema.
    """
    signature = inspect.signature(fn)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    hints = typing.get_type_hints(fn)

    def method(self: RLHubEnvironment, *args: Any, **kwargs: Any) -> str:
        return self._call(name, signature, args, kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = fn.__doc__
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()],
        return_annotation=hints.get("return", signature.return_annotation),
    )
    method.__annotations__ = hints
    return method


def environment_factory(env_or_id: MultiTurnEnv | str, **config: Any) -> type[RLHubEnvironment]:
    """A class for ``GRPOTrainer(environment_factory=...)`` that runs a multi-turn rlhub env's tools.

    Train on the rows of :func:`to_dataset` (``reset`` rebuilds each episode's example from its columns,
    ``example_id`` included) and score with :func:`reward_funcs`: with ``environments=``, as TRL passes
    them, each rubric function gets the final assistant text as the completion and the whole transcript
    as the ``transcript`` column, as in rlhub's own episodes. TRL bounds an episode with
    ``GRPOConfig.max_tool_calling_iterations`` (the env's ``max_turns`` counts the final turn too, so pass
    ``max_turns - 1``). The class defines no ``get_reward``, which TRL would add as one more reward with
    weight 1 on top of the rubric's.

    Args:
        env_or_id: A multi-turn rlhub env, or a registered id such as ``"calculator-v1"``.
        **config: Config overrides, with an env id only.

    Returns:
        A subclass of :class:`RLHubEnvironment` with one public method per tool of the env, named, typed
        and documented as the tool function.

    Raises:
        ConfigError: The env is not multi-turn, or a tool's name is not a usable method name.

    Example:
        >>> Calculator = environment_factory("calculator-v1")
        >>> environment = Calculator()
        >>> environment.reset(prompt=[], answer="4", example_id="calculator/train/0")
        >>> environment.calculate(expression="2 + 2"), environment.calculate(expression="2 ** 100")
        ('4', 'error: calculate failed: ValueError: exponents must be whole numbers up to 64')
        >>> environment.state.tools.calls, environment.state.tools.errors
        (2, 1)
    """
    env = _env(env_or_id, config)
    label = env.env_id or type(env).__name__
    if getattr(env, "url", None) and env.multi_turn:
        raise ConfigError(
            f"{env.url} serves a multi-turn env whose tools run on its server; environment_factory runs tools in "
            f"the trainer's process: pass the env id ({env.env_id!r}) instead of its URL"
        )
    if not isinstance(env, MultiTurnEnv):
        raise ConfigError(f"{label} is a single-turn env; environment_factory is for multi-turn (tool) envs")
    namespace: dict[str, Any] = {"env": env, "__module__": __name__}
    for name, fn in env.toolbox.tools.items():
        if not name.isidentifier() or name.startswith("_") or hasattr(RLHubEnvironment, name):
            raise ConfigError(f"{label}: tool {name!r} cannot be a method of the TRL environment; rename the tool")
        namespace[name] = _tool_method(name, fn)
    class_name = "".join(part.capitalize() for part in label.replace("-", "_").split("_") if part) + "Environment"
    if not class_name.isidentifier():
        class_name = "RLHubToolEnvironment"
    cls = type(class_name, (RLHubEnvironment,), namespace)
    cls.__doc__ = f"The tools of rlhub's {label} for TRL's GRPOTrainer (see rlhub.integrations.trl.RLHubEnvironment)."
    return cls
