"""``dataset=`` goes through the real ``datasets.load_dataset``: here on a local folder of parquet or JSON files.

The hub path of the data envs (used when no local copy is found) is otherwise never run by the tests, since
nothing here may reach the hub; ``load_dataset`` reads a local folder the same way, offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlhub

FIXTURE = Path(__file__).resolve().parent / "data" / "math" / "test.jsonl"


@pytest.mark.parametrize("file_format", ["parquet", "json"])
def test_math_env_reads_a_dataset_folder_through_load_dataset(file_format, tmp_path, monkeypatch):
    import datasets

    records = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    folder = tmp_path / "MATH-500-copy"
    folder.mkdir()
    table = datasets.Dataset.from_list(records)
    # Named as on the hub: one test split (math-v1 reads it for both of its splits).
    if file_format == "parquet":
        table.to_parquet(str(folder / "test.parquet"))
    else:
        table.to_json(str(folder / "test.jsonl"))
    monkeypatch.setenv("RLHUB_DATA", str(tmp_path / "empty"))  # no local math/ folder: the dataset is used
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: calls.append((a, kw)) or real(*a, **kw))

    env = rlhub.make("math-v1", dataset=str(folder))
    train, test = env.examples("train"), env.examples("test")
    assert calls and calls[0][0][0] == str(folder) and calls[0][1]["split"] == "test"
    expected = rlhub.make("math-v1", path=str(FIXTURE)).examples("test")
    assert [(ex.id, ex.prompt, ex.answer, ex.info) for ex in test] == [
        (ex.id, ex.prompt, ex.answer, ex.info) for ex in expected
    ]
    assert len(test) == len(records) and {ex.answer for ex in train} == {r["answer"] for r in records}
    gold = env.gold_completion(test[0])
    assert env.score(gold, test[0]).rewards["correct"] == 1.0
