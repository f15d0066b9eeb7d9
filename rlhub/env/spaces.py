"""A gymnasium text space that accepts real model output.

``gymnasium.spaces.Text`` checks every character against a charset (alphanumerics by default), so it
rejects spaces, newlines, LaTeX and unicode: everything a language model writes. ``ModelText`` keeps
Text's length bounds and sampling but accepts any Python string within them.
"""

from __future__ import annotations

import string

from gymnasium.spaces import Text

# Used only for sampling; membership accepts any character.
_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n\t" + "αβγπ∑√≤≥×÷é你好"


class ModelText(Text):
    """Any ``str`` of length ``min_length..max_length``."""

    def __init__(self, max_length: int = 1_000_000, min_length: int = 0, seed=None):
        super().__init__(max_length=max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"ModelText({self.min_length}, {self.max_length})"
