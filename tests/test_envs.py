"""Every registered environment passes `rlhub validate`; then env-specific behaviour.

Contributors write no boilerplate: a new registry.yaml entry is picked up by test_validate_every_env.
"""

from __future__ import annotations

import pytest

import rlhub
from rlhub.authoring.validate import validate_env
from rlhub.errors import ConfigError, RLHubError

ALL_IDS = [s.id for s in rlhub.list_envs()]


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_validate_every_env(env_id):
    report = validate_env(env_id, n=8)
    failed = [(c.name, c.detail) for c in report.checks if not c.passed]
    assert report.passed, failed
    assert {c.name for c in report.checks} >= {"gold scores 1.0", "garbage scores 0", "deterministic"}
    probes = {c.name for c in report.checks if c.kind == "probe"}  # reward-hacking probes, all passed above
    assert probes >= {"empty completion", "empty answer", "prompt echo", "long output"}
    if env_id != "ifeval-v1":  # a free-text response has no answer block to fill with candidates
        assert "answer spam" in probes


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_examples_are_reproducible_from_seed_and_index(env_id):
    env = rlhub.make(env_id)
    a = env.examples("train", limit=6, seed=3)
    b = env.examples("train", limit=6, seed=3)
    assert [(e.id, e.prompt, e.answer) for e in a] == [(e.id, e.prompt, e.answer) for e in b]
    assert all(e.prompt[-1]["role"] == "user" for e in a)


def test_arithmetic_answers_are_the_true_values():
    env = rlhub.make("arithmetic-v1", difficulty=5)
    for ex in env.examples("train", limit=50):
        expression = ex.prompt[-1]["content"].removeprefix("What is ").removesuffix("?")
        assert set(expression) <= set("0123456789+-*() ")
        assert int(ex.answer) == eval(expression)  # test-only check of the generator, on our own text


def test_arithmetic_difficulty_scales_terms():
    easy = rlhub.make("arithmetic-v1", difficulty=1).examples("train", limit=20)
    hard = rlhub.make("arithmetic-v1", difficulty=5).examples("train", limit=20)
    ops = lambda exs: sum(sum(e.prompt[-1]["content"].count(o) for o in "+-*") for e in exs)
    assert ops(hard) > 2 * ops(easy)


def test_countdown_examples_are_solvable_and_scored_exactly():
    env = rlhub.make("countdown-v0")
    for ex in env.examples("train", limit=30):
        assert env.score(env.gold_completion(ex), ex).rewards["correct"] == 1.0
    ex = env.examples("train", limit=1)[0]
    assert env.score(f"<think>x</think><answer>{ex.info['target']}</answer>", ex).rewards["correct"] == 0.0
    assert env.score("<think>x</think><answer>__import__('os')</answer>", ex).rewards["correct"] == 0.0


def test_gsm8k_reads_the_offline_file_and_its_gold():
    env = rlhub.make("gsm8k-v1")
    test = env.examples("test", limit=5)
    assert len(test) == 5 and all(e.answer.replace("-", "").replace(".", "").isdigit() for e in test)
    ex = test[0]
    right = env.score(f"<think>ok</think>\n<answer>{ex.answer}</answer>", ex)
    wrong = env.score(f"<think>ok</think>\n<answer>{int(float(ex.answer)) + 1}</answer>", ex)
    assert right.rewards["correct"] == 1.0 and wrong.rewards["correct"] == 0.0
    assert right.reward > wrong.reward > 0  # the wrong answer still earns the format reward


def test_gsm8k_from_an_explicit_path(tmp_path):
    f = tmp_path / "mini.jsonl"
    f.write_text('{"question": "1+1?", "answer": "It is 2.\\n#### 2"}\n{"question": "bad"}\n')
    env = rlhub.make("gsm8k-v1", path=str(f))
    exs = env.examples("train")
    assert [e.answer for e in exs] == ["2"]


def test_missing_data_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHUB_DATA", str(tmp_path))
    env = rlhub.make("math-v1", dataset=None)
    with pytest.raises(RLHubError, match="pass path=/local/math or set RLHUB_DATA"):
        env.examples("test")
    with pytest.raises(RLHubError, match="does not exist"):
        rlhub.make("gsm8k-v1", path=str(tmp_path / "nope.jsonl")).examples("test")


def test_shipped_data_needs_no_setup_and_rlhub_data_overrides_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RLHUB_DATA", raising=False)
    assert len(rlhub.make("gsm8k-v1").examples("test")) == 1319
    assert len(rlhub.make("bfcl-v0").examples("test")) == 1000
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "1+1?", "answer": "2\\n#### 2"}\n')
    monkeypatch.setenv("RLHUB_DATA", str(tmp_path))
    assert [e.answer for e in rlhub.make("gsm8k-v1").examples("test")] == ["2"]


def test_unreachable_hub_fails_at_once_with_the_fix(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("RLHUB_DATA", str(tmp_path))
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens there
    start = time.monotonic()
    with pytest.raises(RLHubError, match=r"no local math data and the Hugging Face hub is unreachable.*pass path="):
        rlhub.make("math-v1").examples("test")
    assert time.monotonic() - start < 10  # no retry loop with back-off


def test_math_env_accepts_equivalent_latex():
    env = rlhub.make("math-v1")
    by_answer = {e.answer: e for e in env.examples("test")}
    ex = by_answer["\\frac{3}{4}"]
    assert env.score("<think>.</think> so \\boxed{0.75}", ex).rewards["correct"] == 1.0
    assert env.score("<think>.</think> \\boxed{\\frac{6}{8}}", ex).rewards["correct"] == 1.0
    assert env.score("<think>\\boxed{\\frac{3}{4}}</think> \\boxed{1}", ex).rewards["correct"] == 0.0


def test_reset_with_an_explicit_example_and_render():
    env = rlhub.make("arithmetic-v1", render_mode="ansi")
    ex = env.examples("test", limit=1)[0]
    obs, info = env.reset(options={"example": ex})
    assert info["example"] is ex and obs == ex.prompt[-1]["content"]
    _, reward, *_ = env.step(env.gold_completion(ex))
    assert reward == pytest.approx(1.0 + env.config.format_weight)
    assert "[reward]" in env.render()


def test_score_never_raises_on_odd_completions():
    env = rlhub.make("gsm8k-v1")
    ex = env.examples("test", limit=1)[0]
    for odd in [None, 12, b"bytes", [{"role": "user"}], "\ud800", "x" * 10**6, "<answer>" * 1000]:
        score = env.score(odd, ex)
        assert score.reward == 0.0 and not score.errors, (odd if len(str(odd)) < 50 else "long", score)
    chat = [{"role": "assistant", "content": f"<think>a</think><answer>{ex.answer}</answer>"}]
    assert env.score(chat, ex).rewards == {"correct": 1.0, "format": 1.0}


@pytest.mark.parametrize(
    "env_id, overrides",
    [("arithmetic-v1", {"answer_format": "latex"}), ("arithmetic-v1", {"difficulty": 99}), ("sql-v2", {"rows": 3})],
)
def test_a_config_its_own_validate_refuses_names_the_env_like_an_unknown_key_does(env_id, overrides):
    with pytest.raises(ConfigError) as refused:
        rlhub.make(env_id, **overrides)
    owner = type(rlhub.make(env_id)).__name__
    message = str(refused.value)
    assert message.startswith(f"{owner}: ") and message.count(f"{owner}:") == 1 and "\n" not in message
