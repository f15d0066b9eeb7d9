"""`rlhub eval --out` writes a manifest; `rlhub eval --rescore` catches a reward that changed since."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rlhub.cli import main


@pytest.fixture(scope="module")
def stored_eval(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "out"
    args = ["eval", "arithmetic-v1", "--model", tiny_model_dir, "-n", "8", "--max-new-tokens", "6", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--no-plot"])
    assert result.exit_code == 0, result.output
    return tiny_model_dir, out


def test_manifest_names_env_data_model_and_sampler(stored_eval):
    from rlhub.evaluate import folder_hash

    model, out = stored_eval
    manifest = json.loads((out / "manifest.json").read_text())
    [env] = manifest["envs"]
    assert env["env_id"] == "arithmetic-v1" and env["version"] == 1 and env["file"] == "eval.json"
    assert len(env["code_hash"]) == len(env["data_hash"]) == len(env["rewards_hash"]) == 16
    assert manifest["model"] == {"name": str(model), "hash": folder_hash(model)}
    assert manifest["sampler"] == {
        "backend": "hf",
        "n": 8,
        "k": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_new_tokens": 6,
        "seed": 0,
    }
    assert manifest["rlhub_version"] and len(json.loads((out / "eval.json").read_text())["records"]) == 8


def test_rescore_of_an_unchanged_env_exits_0(stored_eval):
    _, out = stored_eval
    result = CliRunner().invoke(main, ["eval", "--rescore", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 completions re-scored, no reward changed" in result.output


def test_rescore_reports_every_example_whose_reward_changed_and_exits_1(stored_eval, monkeypatch):
    from rlhub.envs.arithmetic import ArithmeticEnv
    from rlhub.rewards import Rubric

    _, out = stored_eval
    stored = json.loads((out / "eval.json").read_text())["records"]

    def lenient(completions, **kwargs):  # a "fixed" reward that now gives everything half marks
        return [0.5] * len(completions)

    monkeypatch.setattr(ArithmeticEnv, "build_rubric", lambda self: Rubric({"correct": (lenient, 1.0)}))
    result = CliRunner().invoke(main, ["eval", "--rescore", str(out), "--json"])
    assert result.exit_code == 1, result.output
    [report] = json.loads(result.output)
    assert report["checked"] == 8
    assert sorted(c["id"] for c in report["changed"]) == sorted(r["id"] for r in stored)
    assert all(c["new"] == 0.5 and c["rewards"]["correct"][1] == 0.5 for c in report["changed"])
    assert "format" in report["changed"][0]["rewards"]  # a reward that disappeared counts as changed


def test_rescore_notes_changed_data_and_needs_a_manifest(stored_eval, tmp_path):
    _, out = stored_eval
    copy = tmp_path / "copy"
    copy.mkdir()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["envs"][0]["data_hash"] = "0" * 16
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "eval.json").write_text((out / "eval.json").read_text())
    result = CliRunner().invoke(main, ["eval", "--rescore", str(copy)])
    assert result.exit_code == 0 and "data_hash 0000000000000000 ->" in result.output
    (copy / "manifest.json").unlink()
    result = CliRunner().invoke(main, ["eval", "--rescore", str(copy)])
    assert result.exit_code == 1 and "manifest.json not found" in result.output
    result = CliRunner().invoke(main, ["eval", "arithmetic-v1", "--rescore", str(out)])
    assert result.exit_code == 2 and "pass the folder alone" in result.output


def _with_passed(src, dst, passed):
    """A copy of the eval folder ``src`` whose records pass as ``passed`` says (one flag per record)."""
    import shutil

    shutil.copytree(src, dst)
    data = json.loads((dst / "eval.json").read_text())
    for record, flag in zip(data["records"], passed, strict=True):
        record["passed"] = flag
    (dst / "eval.json").write_text(json.dumps(data))
    return dst


def test_compare_pairs_two_evals_example_by_example(stored_eval, tmp_path):
    from rlhub.evaluate import compare

    _, out = stored_eval
    before = _with_passed(out, tmp_path / "before", [False] * 8)
    after = _with_passed(out, tmp_path / "after", [True] * 6 + [False] * 2)
    [row] = compare(before, after)
    assert (row.env_id, row.examples, row.before, row.after) == ("arithmetic-v1", 8, 0, 0.75)
    assert (row.gained, row.lost) == (6, 0)
    # differences six 1s and two 0s: sd = sqrt(1.5 / 7); half-width 1.96 sd / sqrt(8)
    half = 1.959963984540054 * (1.5 / 7) ** 0.5 / 8**0.5
    assert row.difference == 0.75 and abs(row.low - (0.75 - half)) < 1e-12 and abs(row.high - (0.75 + half)) < 1e-12
    assert row.excludes_zero and row.p_value == 2 * 0.5**6
    # Pairing matters: the same two pass rates, with the examples swapped, is no evidence.
    mixed = _with_passed(out, tmp_path / "mixed", [True, True, False, False, True, True, True, True])
    [row] = compare(mixed, after)
    assert (row.gained, row.lost, row.difference) == (2, 2, 0.0) and not row.excludes_zero and row.p_value == 1.0

    result = CliRunner().invoke(main, ["eval", "--compare", str(before), str(after), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["excludes_zero"] is True


def test_compare_pools_pairs_into_one_paired_sample(stored_eval, tmp_path):
    """One pair per level, say: every pair's examples enter one paired sample, each pair checked as compare does."""
    from rlhub.errors import RLHubError
    from rlhub.evaluate import compare_pooled

    _, out = stored_eval
    pairs = [
        (_with_passed(out, tmp_path / "b1", [False] * 8), _with_passed(out, tmp_path / "a1", [True] * 6 + [False] * 2)),
        (_with_passed(out, tmp_path / "b2", [True] * 8), _with_passed(out, tmp_path / "a2", [True] * 7 + [False])),
    ]
    [row] = compare_pooled(pairs)
    # 16 examples: before 8 of 16, after 13 of 16; differences six +1, one -1, nine 0
    assert (row.examples, row.before, row.after, row.gained, row.lost) == (16, 0.5, 13 / 16, 6, 1)
    mean = 5 / 16
    sd = ((6 * (1 - mean) ** 2 + (-1 - mean) ** 2 + 9 * mean**2) / 15) ** 0.5
    half = 1.959963984540054 * sd / 16**0.5
    assert row.difference == pytest.approx(mean) and row.low == pytest.approx(mean - half)
    assert row.high == pytest.approx(mean + half) and row.p_value == pytest.approx(2 * (1 + 7) / 2**7)

    args = ["eval", "--json"] + [a for before, after in pairs for a in ("--compare", str(before), str(after))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["examples"] for r in rows] == [8, 8, 16] and rows[-1]["pair"] == "pooled over the 2 pairs"
    assert rows[0]["difference"] == 0.75 and rows[1]["difference"] == -0.125 and rows[2]["difference"] == mean

    # A pair on other examples is refused as compare refuses it; so are pairs that sampled differently.
    manifest = json.loads((pairs[1][1] / "manifest.json").read_text())
    manifest["envs"][0]["data_hash"] = "0" * 16
    (pairs[1][1] / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RLHubError, match="different examples"):
        compare_pooled(pairs)
    sampled = [_with_passed(out, tmp_path / name, [True] * 8) for name in ("s1", "s2")]
    for folder in sampled:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["sampler"].update(k=4, temperature=1.0)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RLHubError, match="the pairs sampled differently"):
        compare_pooled([pairs[0], tuple(sampled)])
    budget = [_with_passed(out, tmp_path / name, [True] * 8) for name in ("t1", "t2")]
    for folder in budget:  # greedy as the first pair, with another token budget
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["sampler"]["max_new_tokens"] += 10
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RLHubError, match="max_new_tokens"):
        compare_pooled([pairs[0], tuple(budget)])


def test_compare_refuses_evals_of_other_examples_or_sampling(stored_eval, tmp_path):
    from rlhub.errors import RLHubError
    from rlhub.evaluate import compare

    _, out = stored_eval
    other = _with_passed(out, tmp_path / "other", [False] * 8)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["envs"][0]["data_hash"] = "0" * 16
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RLHubError, match="different examples"):
        compare(out, other)
    manifest["envs"][0]["data_hash"] = json.loads((out / "manifest.json").read_text())["envs"][0]["data_hash"]
    manifest["sampler"]["temperature"] = 1.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["eval", "--compare", str(out), str(other)])
    assert result.exit_code == 1 and "sampled differently (temperature" in result.output


def test_compare_ignores_training_only_config_and_refuses_any_other(stored_eval, tmp_path):
    """An adapter's eval takes its training run's env config: turn rewards there do not change what is measured."""
    from rlhub.errors import RLHubError
    from rlhub.evaluate import _training_only, compare

    _, out = stored_eval
    assert json.loads((out / "manifest.json").read_text())["envs"][0]["training_only"] == []
    other = _with_passed(out, tmp_path / "other", [True] * 8)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["envs"][0].update(config={"turn_bonus": 0.5}, training_only=["turn_bonus"])
    (other / "manifest.json").write_text(json.dumps(manifest))
    [row] = compare(out, other)
    assert row.examples == 8 and row.after == 1.0
    manifest["envs"][0].update(config={"turn_bonus": 0.5, "few_shot": 2})  # few_shot changes the prompts
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RLHubError, match="different examples"):
        compare(out, other)
    # A built-in env's own training-only fields count too (evals written before they were recorded).
    assert _training_only("calculator-v1", {}, {}) == {"tool_error_reward", "result_reward"}
    assert _training_only("arithmetic-v1", {}, {}) == set()
