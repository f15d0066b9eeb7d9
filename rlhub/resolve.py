"""The one resolver of ``module:attr`` paths: registry entry points, recipe rewards and algorithms use it.

It also runs alone, without rlhub: the sandbox's zygote preloads its modules through ``resolve_module``, defining
this file as a module of another name from its source (see ``rlhub/sandbox/_zygote.py``). So it imports only the
standard library and ``rlhub.errors``, whose ``ConfigError`` a local class stands in for there.

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
from types import ModuleType
from typing import Any

if __name__ == "rlhub.resolve":
    from rlhub.errors import ConfigError
else:  # the zygote's copy: no rlhub in the sandbox, and an image's own rlhub would cost a second to import

    class ConfigError(ValueError):
        """A module or attribute that does not resolve (``rlhub.errors.ConfigError`` outside the sandbox)."""


def resolve_module(name: str, what: str = "a module") -> ModuleType:
    """The module called ``name``, imported: for callers that need the module itself (its source, its docstring).

    Args:
        name: A dotted module name (``"rlhub.envs.arithmetic"``).
        what: What the caller looks for, for the error.

    Raises:
        ConfigError: One line naming ``what`` and ``name`` when the module does not import.

    Example:
        >>> resolve_module("rlhub.errors").__name__
        'rlhub.errors'
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ConfigError(f"{what}: cannot import {name!r} ({reason})") from exc


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
    module = resolve_module(module_name, what=f"{what} {path!r}")
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{what} {path!r}: module {module_name!r} has no {attr!r}") from None
