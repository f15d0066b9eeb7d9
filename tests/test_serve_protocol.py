"""rlhub-env/1's request encoding (``rlhub.serve.protocol``): what clients send must keep its meaning."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rlhub.serve.protocol import encode, example_from_json, example_to_json
from rlhub.types import Example


@dataclasses.dataclass
class Grid:
    rows: int
    cells: tuple


EXAMPLES = [
    Example(id="a/train/0", prompt=[{"role": "user", "content": "2+2?"}], answer="4", info={}),
    Example(id="a/train/1", prompt=[{"role": "user", "content": "é \ud800"}], answer=["x", 1], info={"k": (1, 2)}),
    Example(id="a/train/2", prompt=[], answer=Grid(2, (1, 2)), info={"grid": Grid(1, ((3,),)), "n": None}),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_an_example_encodes_to_the_bytes_of_its_deep_copy(example):
    """The shallow ``example_to_json`` and ``encode`` send what ``json.dumps(dataclasses.asdict(...))`` sent:
    ASCII-escaped (a lone surrogate travels), tuples as lists, nested dataclasses as their fields."""
    assert encode(example_to_json(example)) == json.dumps(dataclasses.asdict(example)).encode()
    decoded = example_from_json(json.loads(encode(example_to_json(example))))
    assert decoded.id == example.id and decoded.prompt == example.prompt


def test_what_json_cannot_carry_is_named():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        encode({"completions": [{1, 2}]})
