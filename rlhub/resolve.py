"""The one resolver of ``module:attr`` paths: registry entry points, recipe rewards and algorithms use it.

>>> resolve("rlhub.errors:ConfigError").__name__
'ConfigError'
>>> resolve("rlhub.errors.ConfigError").__name__
'ConfigError'
>>> resolve("rlhub.errors:Nope", what="reward")
Traceback (most recent call last):
...
rlhub.errors.ConfigError: reward 'rlhub.errors:Nope': module 'rlhub.errors' has no 'Nope'
"""

from __future__ import annotations

import importlib
from typing import Any

from rlhub.errors import ConfigError


def resolve(path: str, what: str = "object") -> Any:
    """The object that ``path`` names: ``"package.module:attr"`` or ``"package.module.attr"``.

    Args:
        path: Where the object lives; the part after ``:`` (or the last ``.``) is an attribute of the module.
        what: What the caller looks for, for the error (``"reward"``, ``"algorithm.name"``).

    Returns:
        The attribute.

    Raises:
        ConfigError: One line naming ``what`` and ``path`` when the path is malformed, the module does
            not import, or it has no such attribute.
    """
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} {path!r} is not a 'package.module:attr' path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ConfigError(f"{what} {path!r}: cannot import {module_name!r} ({reason})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what} {path!r}: module {module_name!r} has no {attr!r}") from None
