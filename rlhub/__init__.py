"""rlhub: verifiable RL environments for language models, and trainers for them.

>>> import rlhub
>>> env = rlhub.make("arithmetic-v1")
>>> example = env.examples("train", limit=1)[0]
>>> env.score(env.gold_completion(example), example).rewards["correct"]
1.0
"""

from rlhub.env.registry import EnvSpec, list_envs, make
from rlhub.errors import ConfigError, RLHubError
from rlhub.types import Example, Score

__version__ = "0.1.0"
__all__ = ["ConfigError", "EnvSpec", "Example", "RLHubError", "Score", "list_envs", "make"]


def _register_gymnasium() -> None:
    # A malformed registry must not make `import rlhub` itself fail: the error surfaces, with the
    # entry named, from list_envs()/make() and the CLI instead.
    try:
        from rlhub.env.registry import register_with_gymnasium

        register_with_gymnasium()
    except RLHubError as exc:
        import warnings

        warnings.warn(f"rlhub environments not registered with gymnasium: {exc}", stacklevel=2)


_register_gymnasium()
