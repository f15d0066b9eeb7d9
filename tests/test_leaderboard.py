"""Measured env cards and the leaderboard: the numbers are right, stored, rendered, and the pages stay current."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

import rlhub
from rlhub.authoring.envcard import env_card
from rlhub.authoring.measurements import EMBEDDED, card_sections, load_measurements, stored_for
from rlhub.generation.rollout import Completion

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tools/ is the clone's, beside the package: `python -m pytest` from the root adds it
    sys.path.insert(0, str(ROOT))  # to the path, a bare `pytest` does not

from tools.leaderboard.measure import Settings, measure_env, models_to_measure, trust  # noqa: E402
from tools.leaderboard.pages import measure, record_run  # noqa: E402
from tools.leaderboard.render import baseline_cell, leaderboard_json, leaderboard_page  # noqa: E402

ALL_IDS = [s.id for s in rlhub.list_envs()]
FIX = "python -m tools.leaderboard write"


class GoldEngine:
    """A rollout engine that answers an example's gold completion when the example is in ``right``, else junk."""

    def __init__(self, tokenizer, golds: dict[str, str], right: set[str]):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id or 0
        self.golds = golds  # the question (last user message) -> its gold completion
        self.right = right

    def generate(self, prompt_ids, n, sampling):
        out = []
        for i, ids in enumerate(prompt_ids):
            prompt = self.tokenizer.decode(ids)
            question = max((q for q in self.golds if q in prompt), key=len)
            text = self.golds[question] if question in self.right else "no idea"
            out += [Completion(i, [1, 2], [0.0, 0.0], text, True) for _ in range(n)]
        return out

    def sync_weights(self, policy) -> None:
        pass


@pytest.fixture(scope="module")
def tokenizer():
    from tiny_models import tiny_model

    return tiny_model(seed=0)[1]


def _golds(env_id: str, limit: int, **config) -> dict[str, str]:
    env = rlhub.make(env_id, **config)
    return {ex.prompt[-1]["content"]: env.gold_completion(ex) for ex in env.examples("test", limit=limit)}


def test_baseline_levels_and_families_count_exactly_the_gold_answers(tokenizer):
    settings = Settings(n=4, sampled_n=2, k=2, level_n=2, max_new_tokens=8, batch_size=4)
    golds = {}
    for level in range(1, 6):
        golds.update(_golds("arithmetic-v1", 4, difficulty=level))
    sample = list(_golds("arithmetic-v1", 4))  # the registry's difficulty, 2
    engine = GoldEngine(tokenizer, golds, right=set(sample[:2]))

    result = measure_env("arithmetic-v1", "gold-half", settings, engine=engine).to_dict()

    greedy, sampled = result["baseline"]["greedy"], result["baseline"]["sampled"]
    assert (greedy["n"], greedy["pass@1"]) == (4, 0.5)
    assert math.isclose(greedy["pass@1_se"], math.sqrt(1 / 3) / 2)  # stdev of [1, 1, 0, 0] over sqrt(4)
    assert greedy["mean_reward"] > 0.5  # the gold also earns the format reward; junk earns nothing
    assert (sampled["n"], sampled["k"], sampled["pass@1"], sampled["pass@2"]) == (2, 2, 1.0, 1.0)
    levels = {row["group"]: row["pass@1"] for row in result["difficulty"]["by_level"]}
    # Level 2's first two examples are the sample's first two (both right); other levels are other examples.
    assert levels == {"level 1": 0.0, "level 2": 1.0, "level 3": 0.0, "level 4": 0.0, "level 5": 0.0}
    assert result["cost"]["reward_ms_per_completion"] > 0
    assert "sandbox_programs_per_completion" not in result["cost"]  # not a code env


def test_code_env_costs_sandbox_programs_and_families_split_the_sample(tokenizer):
    settings = Settings(n=6, sampled_n=0, k=1, level_n=0, max_new_tokens=8, batch_size=6)
    golds = _golds("codegen-v0", 6)
    result = measure_env(
        "codegen-v0", "gold", settings, engine=GoldEngine(tokenizer, golds, right=set(golds))
    ).to_dict()

    assert result["baseline"]["greedy"]["pass@1"] == 1.0 and "sampled" not in result["baseline"]
    assert result["cost"]["sandbox_programs_per_completion"] >= 1.0  # every gold program runs its tests
    families = result["difficulty"]["by_family"]
    assert sum(row["n"] for row in families) == 6 and all(row["pass@1"] == 1.0 for row in families)
    assert "by_level" not in result["difficulty"]  # level_n=0 skips the per-level samples


def test_trust_lists_every_probe_with_its_rule_and_counts_gold_full_marks():
    found = trust("countdown-v0", Settings(n=5)).to_dict()
    assert found["validate_passed"] and found["gold"] == {"n": 5, "full_marks": 5, "reward": "correct"}
    names = [p["name"] for p in found["probes"]]
    assert "empty completion" in names and "answer spam" in names
    assert all(p["rule"].startswith("correct <= 0") or "gold" in p["rule"] for p in found["probes"])
    assert all(p["max_correct"] == 0.0 for p in found["probes"] if p["rule"].startswith("correct <= 0"))


def test_env_without_data_is_not_measured_and_says_why(monkeypatch):
    monkeypatch.delenv("RLHUB_DATA")
    result = measure_env("math-v1", EMBEDDED, Settings()).to_dict()
    assert result["status"] == "not measured" and "RLHUB_DATA" in result["reason"]


def test_measure_with_a_tiny_model_stores_numbers_charts_and_renders_them(tiny_model_dir, tmp_path):
    model = tiny_model_dir
    out = tmp_path / "docs" / "measurements.json"
    out.parent.mkdir()
    settings = Settings(n=3, sampled_n=2, k=2, level_n=1, family_n=1, max_new_tokens=4)
    measure([model], settings, only=["arithmetic-v1", "gsm8k-v1", "rg/<task>-v0"], out=out, log=lambda _: None)

    data = json.loads(out.read_text())
    assert data["settings"]["n"] == 3 and data["commit"] and data["date"]
    envs = data["models"][model]["envs"]
    assert set(envs) == {"arithmetic-v1", "gsm8k-v1", "rg/<task>-v0"}
    assert envs["arithmetic-v1"]["baseline"]["greedy"]["n"] == 3
    assert len(envs["arithmetic-v1"]["difficulty"]["by_level"]) == 5
    lengths = envs["gsm8k-v1"]["difficulty"]["lengths"]
    assert lengths["examples"] == 1319 and lengths["prompt_tokens"]["min"] > 20  # the chat prompt, in tokens
    family = envs["rg/<task>-v0"]
    assert family["baseline"]["greedy"]["tasks"] == 8 and family["baseline"]["greedy"]["n"] == 8
    assert data["envs"]["arithmetic-v1"]["validate_passed"]
    assert "rg/<task>-v0" not in data["envs"]  # probes are per task; the family row has only a baseline

    page = leaderboard_page(data)
    assert f"| env | domain | `{model}` |" in page  # a column for the model
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == [f"`{i}`" for i in ALL_IDS] + ["`rg/<task>-v0`"]
    assert all("not run" in r for r in rows if "arithmetic" not in r and "gsm8k" not in r and "rg/" not in r)
    assert json.loads(leaderboard_json(data))["models"] == [model]


SYNTHETIC = {
    "commit": "abc123",
    "date": "2026-12-03",
    "rlhub_version": "0.1",
    "settings": {"n": 4, "seed": 0, "max_new_tokens": 64, "family_n": 2},
    "envs": {
        "codegen-v0": {
            "status": "measured",
            "validate_passed": False,
            "checks_failed": ["early exit"],
            "probes": [
                {"name": "early exit", "rule": "correct <= 0", "max_correct": 1.0, "max_total": 1.1, "passed": False}
            ],
            "gold": {"n": 4, "full_marks": 3, "reward": "correct"},
        }
    },
    "models": {
        EMBEDDED: {
            "envs": {
                "codegen-v0": {
                    "status": "measured",
                    "baseline": {
                        "greedy": {
                            "n": 4,
                            "pass@1": 0.5,
                            "pass@1_se": 0.25,
                            "mean_reward": 0.55,
                            "mean_reward_se": 0.2,
                        },
                        "sampled": {
                            "n": 2,
                            "k": 4,
                            "temperature": 1.0,
                            "pass@1": 0.25,
                            "pass@4": 0.5,
                            "pass@1_se": 0.1,
                            "mean_reward": 0.3,
                        },
                    },
                    "difficulty": {"by_level": [{"group": "level 1", "n": 4, "pass@1": 0.75, "se": 0.25}]},
                    "cost": {"reward_ms_per_completion": 12.34, "sandbox_programs_per_completion": 1.5},
                    "chart": "codegen-v0-difficulty.png",
                },
                "math-v1": {"status": "not measured", "reason": "no data offline"},
            }
        },
        "other/model": {"envs": {"codegen-v0": {"status": "not measured", "reason": "endpoint down"}}},
    },
}


ROW = {"group": "rg/leg_counting-v0", "n": 8, "pass@1": 0.25, "se": 0.125}


def test_card_sections_render_the_stored_numbers():
    text = "\n\n".join(card_sections("codegen-v0", 2, SYNTHETIC))
    assert "| greedy | 4 | 1 | 50.0% ± 25.0 |  | 0.550 ± 0.200 |" in text
    assert "| temperature 1 | 2 | 4 | 25.0% ± 10.0 | 50.0% | 0.300 |" in text
    assert "| `level 1` | 4 | 75.0% ± 25.0 |" in text and "](measurements/codegen-v0-difficulty.png)" in text
    assert "fails (early exit); 3 of 4 gold completions (the first 4 test examples" in text
    assert "| early exit | `correct <= 0` | 1 | 1.1 | **no** |" in text
    assert "12.3 ms per completion, 1.50 sandbox programs per completion" in text
    assert "commit `abc123`" in text
    family = {"envs": {"rg/<task>-v0": {"status": "measured", "difficulty": {"by_family": [ROW]}}}}
    drawn = "\n\n".join(card_sections("rg/leg_counting-v0", 2, {"models": {EMBEDDED: family}}))
    assert "as one family (see docs/leaderboard.md): greedy pass@1 of" in drawn and "25.0% ± 12.5 on 8" in drawn
    assert "not among those drawn" in "\n\n".join(card_sections("rg/dice-v0", 2, {"models": {EMBEDDED: family}}))
    missing = "\n\n".join(card_sections("math-v1", 2, SYNTHETIC))
    assert "_Not measured: no data offline_" in missing


def test_leaderboard_has_a_row_per_env_a_column_per_model_and_says_why_not_measured():
    page = leaderboard_page(SYNTHETIC)
    assert f"| env | domain | `{EMBEDDED}` | `other/model` |" in page
    assert "| `codegen-v0` | code | 50.0% ± 25.0 (n=4) | not measured |" in page
    assert "| `arithmetic-v1` | math | not run | not run |" in page
    assert "- `math-v1` (smollm2-135m-instruct): no data offline" in page
    assert "- `codegen-v0` (other/model): endpoint down" in page
    assert baseline_cell("codegen-v0", SYNTHETIC) == "50.0% (n=4)"
    assert baseline_cell("math-v1", SYNTHETIC) == "not measured"


# --- the checked-in pages are current with the stored measurements (never re-measured here) -----------------


def test_leaderboard_pages_are_current():
    data = load_measurements()
    assert data["models"].get(EMBEDDED), "docs/measurements.json holds no measurement of the embedded model"
    for name, expected in (("leaderboard.md", leaderboard_page(data)), ("leaderboard.json", leaderboard_json(data))):
        path = ROOT / "docs" / name
        assert path.is_file() and path.read_text(encoding="utf-8") == expected, f"docs/{name} is stale: {FIX}"


def test_every_measured_chart_is_checked_in():
    data = load_measurements()
    charts = [r["chart"] for r in data["models"][EMBEDDED]["envs"].values() if r.get("chart")]
    assert charts and all((ROOT / "docs" / "measurements" / c).is_file() for c in charts)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_card_has_baseline_difficulty_trust_and_cost(env_id):
    card = env_card(env_id)
    for section in ("Baseline", "Difficulty", "Trust", "Cost"):
        assert f"\n## {section}\n" in card
    assert "_Not measured yet" not in card, f"{env_id} has no stored measurement: python -m tools.leaderboard measure"


def test_readme_baseline_column_matches_the_measurements():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    data = load_measurements()
    for env_id in [*ALL_IDS, "rg/<task>-v2"]:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{env_id}` |"))
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[-1] == baseline_cell(env_id, data), f"README's baseline for {env_id} is stale"


def test_card_says_what_a_smaller_measurement_left_out():
    greedy = {"n": 8, "pass@1": 0.0, "pass@1_se": 0.0, "mean_reward": 0.0, "mean_reward_se": 0.0}
    result = {"status": "measured", "baseline": {"greedy": greedy}, "difficulty": {}, "cost": {}}
    data = {"models": {EMBEDDED: {"envs": {"arithmetic-v1": result, "countdown-v0": result}}}}
    arithmetic = "\n\n".join(card_sections("arithmetic-v1", 2, data))
    assert "No temperature-1 samples" in arithmetic and "Per-level samples were not part" in arithmetic
    countdown = "\n\n".join(card_sections("countdown-v0", 2, data))  # no difficulty field: nothing skipped
    assert "Per-level" not in countdown and "_No levels or families._" in countdown


# --- the card's training run: recorded from a finished run's own files ------------------------------------


def _fake_run(folder: Path, steps: int, rewards: list[float]) -> Path:
    folder.mkdir()
    recipe = {
        "model": {"name": EMBEDDED},
        "env": {"id": "sql-v1"},
        "rewards": {"correct": 1.0, "format": 0.5},
        "algorithm": {"name": "grpo", "group_size": 8},
        "training": {"max_steps": steps, "prompts_per_step": 4},
        "monitor": {"enabled": True},
    }
    (folder / "recipe.json").write_text(json.dumps(recipe))
    rows = [{"step": i + 1, "reward": r, "accuracy": r / 2, "charts/step_time": 60.0} for i, r in enumerate(rewards)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"hack_watch": "format_only, repeated_completion", "commit": "0123456789ab"}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_record_run_stores_first_and_last_steps_and_the_card_shows_them(tmp_path):
    rewards = [0.1, 0.2, 0.3, 0.2, 0.2, 0.5, 0.6, 0.4, 0.6, 0.9, 0.7, 0.8]
    out = tmp_path / "m.json"
    out.write_text(json.dumps({"models": {}, "envs": {}}))
    run = record_run(_fake_run(tmp_path / "run", 12, rewards), "recipes/sql-quickstart.yaml", out=out).to_dict()
    assert run["first"]["reward"] == pytest.approx(0.2) and run["last"]["reward"] == pytest.approx(0.68)
    assert run["first"]["accuracy"] == pytest.approx(0.1) and run["wall_s"] == 720.0
    data = load_measurements(out)
    assert data["training"]["sql-v1"]["reward"] == rewards and data["models"] == {}
    text = "\n\n".join(card_sections("sql-v1", 2, data))
    assert "`rlhub train recipes/sql-quickstart.yaml` (GRPO + LoRA on" in text and "12 steps of 4 prompts x 8" in text
    assert "first 5 steps **0.200**, over the last 5 **0.680**" in text
    assert "at commit `0123456789ab`" in text  # the run's code, not the recording checkout's
    assert "| 1-5 | 0.200 | 0.100 |" in text and "| 6-10 | 0.600 | 0.300 |" in text and "| 11-12 | 0.750 |" in text
    assert "tripped during the run: `format_only`, `repeated_completion`." in text
    assert "Held-out pass@1" not in text  # recorded without --heldout
    assert "None recorded" in "\n\n".join(card_sections("countdown-v0", 2, data))


def _fake_eval(folder: Path, env_id: str, passed: list[bool], level: int, adapter: Path | None = None) -> Path:
    """An ``rlhub eval --out`` folder of ``env_id`` at ``level`` whose examples pass as ``passed`` says, of the base
    model or of ``adapter``."""
    from rlhub.evaluate import folder_hash

    folder.mkdir()
    sampler = {"n": len(passed), "k": 1, "temperature": 0.0, "max_new_tokens": 96, "seed": 0}
    entry = {"env_id": env_id, "file": "eval.json", "data_hash": f"h{level}", "config": {"difficulty": level}}
    model = (
        {"name": EMBEDDED, "hash": "b"}
        if adapter is None
        else {"name": str(adapter), "adapter_hash": folder_hash(adapter)}
    )
    (folder / "manifest.json").write_text(json.dumps({"model": model, "sampler": sampler, "envs": [entry]}))
    records = [{"id": f"test/{i}", "passed": flag} for i, flag in enumerate(passed)]
    (folder / "eval.json").write_text(json.dumps({"records": records}))
    return folder


def test_record_run_with_heldout_evals_pools_them_and_the_card_shows_the_paired_gain(tmp_path):
    out = tmp_path / "m.json"
    out.write_text(json.dumps({"models": {}, "envs": {}}))
    run_dir = _fake_run(tmp_path / "run", 10, [0.1] * 5 + [0.5] * 5)
    adapter = run_dir / "checkpoints" / "step-000010" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 16}')
    pairs = [
        (
            _fake_eval(tmp_path / f"base{lv}", "sql-v1", [i < 2 * lv - 1 for i in range(40)], lv),
            _fake_eval(tmp_path / f"after{lv}", "sql-v1", [i < 2 * lv + 9 for i in range(40)], lv, adapter),
        )
        for lv in (1, 2)
    ]
    run = record_run(run_dir, "recipes/sql-quickstart.yaml", out=out, heldout=pairs).to_dict()
    held = run["heldout"]
    assert (held["examples"], held["gained"], held["lost"]) == (80, 20, 0)
    assert held["before"] == pytest.approx(4 / 80) and held["after"] == pytest.approx(24 / 80) and held["low"] > 0
    text = "\n\n".join(card_sections("sql-v1", 2, load_measurements(out)))
    assert "Held-out pass@1 (80 test examples, pooled over 2 evals, greedy, 96 tokens): **0.050** before" in text
    assert "**0.300** after; difference +0.250" in text and "20 gained, 0 lost" in text
    # Evals of another env are not this run's held-out measurement.
    other = [
        (
            _fake_eval(tmp_path / "b", "sql-v2", [False] * 40, 1),
            _fake_eval(tmp_path / "a", "sql-v2", [True] * 40, 1, adapter),
        )
    ]
    with pytest.raises(rlhub.RLHubError, match="do not evaluate sql-v1"):
        record_run(run_dir, "recipes/sql-quickstart.yaml", out=out, heldout=other)
    # The "after" evals must be of this run's last adapter, the "before" ones of the base model.
    elsewhere = tmp_path / "other-adapter"
    elsewhere.mkdir()
    (elsewhere / "adapter_config.json").write_text('{"r": 8}')
    wrong = [(pairs[0][0], _fake_eval(tmp_path / "a2", "sql-v1", [True] * 40, 1, elsewhere))]
    with pytest.raises(rlhub.RLHubError, match="did not evaluate this run's last adapter"):
        record_run(run_dir, "recipes/sql-quickstart.yaml", out=out, heldout=wrong)
    swapped = [(pairs[0][1], pairs[0][1])]
    with pytest.raises(rlhub.RLHubError, match="the 'before' eval is the base model's"):
        record_run(run_dir, "recipes/sql-quickstart.yaml", out=out, heldout=swapped)


@pytest.mark.parametrize("env_id", ["sql-v2", "ifeval-v1"])
def test_new_domains_report_their_quickstart_size_run(env_id):
    """Issue 18: each new domain ships a recipe at the quickstart's size whose recorded run its card reports."""
    data = load_measurements()
    found = stored_for(env_id, data.get("training", {}))  # this version's run, or an earlier version's, labelled
    assert found is not None, f"no training run recorded for {env_id}; python -m tools.leaderboard record-run"
    recorded_on, run = found
    if recorded_on != env_id:
        assert f"_Recorded on `{recorded_on}`, before `{env_id}`'s changes" in "\n\n".join(card_sections(env_id))
    assert (ROOT / run["recipe"]).is_file() and run["steps"] >= 20
    assert run["prompts_per_step"] * run["group_size"] >= 32 and len(run["reward"]) == run["steps"]
    card = (ROOT / "docs" / "envs.md").read_text(encoding="utf-8")
    w = run["window"]
    assert f"first {w} steps **{run['first']['reward']:.3f}**" in card


def test_record_run_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(rlhub.RLHubError, match="steps 3 of 12: record a finished run"):
        record_run(_fake_run(tmp_path / "run", 12, [0.1, 0.2, 0.3]), "r.yaml", out=tmp_path / "m.json")
    with pytest.raises(rlhub.RLHubError, match="not a run folder"):
        record_run(tmp_path, "r.yaml", out=tmp_path / "m.json")


def test_models_to_measure_puts_the_embedded_model_first_once_and_never_for_an_endpoint():
    assert models_to_measure(["other/model", EMBEDDED, "other/model"]) == [EMBEDDED, "other/model"]
    assert models_to_measure(["served"], base_url="http://host/v1") == ["served"]
    assert models_to_measure(["other/model"], embedded=False) == ["other/model"]
    assert models_to_measure([], embedded=False) == []


def test_eval_leaderboard_measures_then_writes_the_pages(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import tools.leaderboard.pages as board
    from rlhub.cli import main

    calls = []
    monkeypatch.chdir(ROOT)  # --leaderboard runs the clone's tools/
    monkeypatch.setattr(board, "measure", lambda models, settings, **kw: calls.append(("measure", models, kw)))
    monkeypatch.setattr(board, "write_pages", lambda: calls.append(("write",)) or [tmp_path / "leaderboard.md"])
    result = CliRunner().invoke(main, ["eval", "--leaderboard", "sql-v1", "--model", "other/model"])
    assert result.exit_code == 0, result.output
    assert calls == [("measure", [EMBEDDED, "other/model"], {"only": ["sql-v1"], "base_url": None}), ("write",)]
    assert "leaderboard.md" in result.output
    calls.clear()
    served = CliRunner().invoke(main, ["eval", "--leaderboard", "--base-url", "http://h/v1", "--model", "m"])
    assert served.exit_code == 0 and calls[0] == ("measure", ["m"], {"only": None, "base_url": "http://h/v1"})
    refused = CliRunner().invoke(main, ["eval", "--leaderboard", "--base-url", "http://h/v1"])
    assert refused.exit_code == 2 and "needs --model" in refused.output


def test_eval_leaderboard_outside_a_clone_says_where_to_run_it_in_one_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import tools.leaderboard.pages as board
    from rlhub.cli import main

    calls = []
    monkeypatch.setattr(board, "measure", lambda *args, **kw: calls.append("measure"))
    monkeypatch.chdir(tmp_path)  # an installed rlhub, run from a folder that is no clone: no tools/ to measure with
    result = CliRunner().invoke(main, ["eval", "--leaderboard", "--model", "other/model"])
    assert result.exit_code == 1 and not calls
    assert result.output.strip().splitlines() == [
        "error: --leaderboard writes the repository's pages: run it from a clone of rlhub"
    ]


def test_cards_say_not_measured_where_no_measurements_are_stored(monkeypatch, tmp_path):
    """A wheel ships its data in rlhub/_data/ and no docs/: its cards render, saying "not measured"."""
    import rlhub.authoring.measurements as measurements

    monkeypatch.setattr(measurements, "shipped_data_dir", lambda: tmp_path / "_data" / "data")
    assert load_measurements() == {"models": {}, "envs": {}}
    card = "\n\n".join(card_sections("countdown-v0"))
    assert card.count("_Not measured yet;") == 2 and "_None recorded;" in card  # Baseline, Trust; Training run


def test_record_run_command_refuses_bad_input_in_one_line(tmp_path):
    """`python -m tools.leaderboard record-run` on a folder that is not a run: one line naming it, exit 1."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "tools.leaderboard", "record-run", str(tmp_path), "--recipe", "recipes/x.yaml"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path} is not a run folder") and line.endswith("give the output_dir of a run")
