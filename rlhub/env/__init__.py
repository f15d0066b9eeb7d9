"""The environment API, in one import: everything an environment module needs.

>>> from rlhub.env import ConfigError, EnvConfig, Example, Probe, ProceduralEnv, Rubric

- Base classes: :class:`ProceduralEnv` (examples generated from a seeded RNG), :class:`DatasetEnv`
  (examples from records on disk or the hub), :class:`MultiTurnEnv` (tool-using episodes, with a
  :class:`ToolBox`), all :class:`TextEnv`; a tool env's episode may hold a :class:`Workspace` (files and
  programs in a sandbox of its own, within :class:`WorkspaceLimits`; :class:`WorkspaceError` for the model),
  and take its tools from an MCP server (:class:`McpToolBox` over a :class:`McpServer`).
- Their configs: :class:`EnvConfig`, :class:`DataConfig`, :class:`MultiTurnConfig` (subclass one as a
  dataclass; ``validate()`` raises :class:`ConfigError`).
- What an env makes and returns: :class:`Example`, :class:`Message`, :class:`Rubric` (its named, weighted
  reward functions, from ``rlhub.rewards``), :class:`Probe` (a reward hack ``rlhub validate`` should try).

The submodules: ``base`` (the classes above), ``multiturn`` and ``tools`` (tool episodes), ``registry``
(``registry.yaml`` and env packages), ``config`` (typed configs from overrides), ``data`` (where data
sets are found), ``spaces`` (gymnasium's view of text).
"""

from rlhub.env.base import SPLITS, DataConfig, DatasetEnv, EnvConfig, Probe, ProceduralEnv, TextEnv
from rlhub.env.mcp import McpServer, McpToolBox
from rlhub.env.multiturn import EpisodeState, MultiTurnConfig, MultiTurnEnv
from rlhub.env.tools import ToolBox, ToolStats
from rlhub.errors import ConfigError, DataNotFound, RLHubError
from rlhub.rewards.rubric import Rubric
from rlhub.sandbox.workspace import Workspace, WorkspaceError, WorkspaceLimits
from rlhub.types import Example, Message, Score

__all__ = [
    "SPLITS",
    "ConfigError",
    "DataConfig",
    "DataNotFound",
    "DatasetEnv",
    "EnvConfig",
    "EpisodeState",
    "Example",
    "McpServer",
    "McpToolBox",
    "Message",
    "MultiTurnConfig",
    "MultiTurnEnv",
    "Probe",
    "ProceduralEnv",
    "RLHubError",
    "Rubric",
    "Score",
    "TextEnv",
    "ToolBox",
    "ToolStats",
    "Workspace",
    "WorkspaceError",
    "WorkspaceLimits",
]
