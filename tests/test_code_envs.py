"""The code environments (codegen-v0, mbpp-v0, humaneval-v0) and their rewards, run in the real sandbox.

Gold answers earn 1.0, garbage and wrong code 0; known ways to fake a passing run (forged tokens, frame
walking, gc scans, lying objects, patched helpers) earn nothing; the
code a completion answers with is found the same way however it is fenced.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

import rlhub
from rlhub.authoring import probes
from rlhub.errors import ConfigError, RLHubError
from rlhub.rewards import code as code_rewards
from rlhub.rewards.code import code_all_pass, code_format, code_pass_rate, extract_code, fenced_python
from rlhub.sandbox.checks import convert

CODE_ENVS = ["codegen-v0", "mbpp-v0", "humaneval-v0"]
GARBAGE = [
    "",
    "I don't know.",
    "```python\n```",
    "```text\nreturn 1\n```",
    "<think>```python\nx = 1\n```",
    "a" * 10_000,
]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```python\nx = 1\n```", "x = 1"),
        ("First:\n```python\nx = 1\n```\nBetter:\n```python\nx = 2\n```", "x = 2"),
        ("```python\nx = 1\n```\nOutput:\n```\n1\n```", "x = 1"),  # a later bare block is output, not code
        ("```\nx = 3\n```", "x = 3"),
        ("```py\nx = 1\n```", "x = 1"),
        ("```Python3 solution.py\nx = 1\n```", "x = 1"),
        ("```python\r\nx = 1\r\n```", "x = 1"),
        ("  ```python\n  def f():\n      return 1\n  ```", "def f():\n    return 1"),  # an indented fence
        ("```python\n    return x + 1\n```", "    return x + 1"),  # a bare function body keeps its indentation
        ("````python\ns = '```'\n````", "s = '```'"),
        ("```python\ndef f():\n    return 1", "def f():\n    return 1"),  # cut off by the token limit
        ("```python\nx = 1\n```\n```python\ndef f(", "x = 1"),  # a closed block beats an unclosed one
        ("<think>```python\nx = 0\n```</think>\n```python\nx = 1\n```", "x = 1"),
        ("<think>```python\nx = 0\n```</think> no code after thinking", None),
        ("```bash\npip install x\n```", None),
        ("```python\n\n```", None),
        ("inline ```python x = 1``` is not a block", None),
        ("", None),
        ("```" * 50, None),
    ],
)
def test_extract_code(text, code):
    assert extract_code(text) == code


def test_fenced_python_round_trips_code_that_holds_fences():
    code = 'FENCE = """\n```\n"""'
    assert fenced_python(code).startswith("````python\n") and extract_code(fenced_python(code)) == code


def test_code_format_wants_exactly_one_closed_python_block():
    good = "<think>easy</think>\n```python\ndef f():\n    return 1\n```"
    two = "```python\nx = 1\n```\n```python\nx = 2\n```"
    chat = [{"role": "assistant", "content": good}]
    assert code_format([good, two, "```python\nx = 1", "```\nx = 1\n```", "", None, chat]) == [1.0, 0, 0, 0, 0, 0, 1.0]


ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(0, 0) == 0"]
WRONG_ADD = "def add(a, b):\n    return a - b\n"
HACKS = {
    "sys.exit(0)": "import sys\nsys.exit(0)",
    "os._exit(0)": "import os\nos._exit(0)",
    "raise SystemExit": "raise SystemExit",
    "prints success": "print('All tests passed')\nprint('OK')",
    "prints a fake token": "print('\\n' + '0' * 32)",
    "rebinds AssertionError": "import builtins\nclass Quiet(Exception):\n    pass\nbuiltins.AssertionError = Quiet",
    "silent excepthook": "import sys\nsys.excepthook = lambda *args: None",
    "exit 0 at exit": "import atexit, os\natexit.register(os._exit, 0)",
    "swallows the tests in a string": "SWALLOW = '''",
    "wraps the tests in a try": "try:\n    import sys",
    "kills itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
}


@pytest.mark.parametrize("hack", sorted(HACKS))
def test_hacks_around_a_wrong_solution_earn_nothing(hack):
    completion = fenced_python(WRONG_ADD + HACKS[hack])
    [rate] = code_pass_rate([completion], tests=[ADD_TESTS])
    assert rate <= 1 / 3  # no more than the wrong solution alone earns (it gets add(0, 0) right)
    assert code_all_pass([completion], tests=[ADD_TESTS]) == [0.0]


def test_a_right_solution_passes_and_rewards_match_their_columns():
    right = fenced_python("def add(a, b):\n    return a + b")
    rows = [right, fenced_python(WRONG_ADD), "no code", right]
    tests = [ADD_TESTS, ADD_TESTS, ADD_TESTS, []]
    assert code_all_pass(rows, tests=tests) == [1.0, 0.0, 0.0, None]  # no tests: not applicable
    assert code_pass_rate(rows, tests=tests) == [1.0, pytest.approx(1 / 3), 0.0, None]
    setup = ["OFFSET = 10", None, None, None]
    shifted = [["assert add(OFFSET, 1) == 11"]] * 4
    assert code_all_pass(rows, tests=shifted, setup_code=setup) == [1.0, 0.0, 0.0, 0.0]


def test_an_endless_loop_costs_one_timeout_and_a_sandbox_failure_scores_zero(monkeypatch):
    monkeypatch.setattr(code_rewards, "TIMEOUT", 0.5)
    loop = fenced_python("def add(a, b):\n    while True:\n        pass")
    started = time.monotonic()
    assert code_pass_rate([loop], tests=[ADD_TESTS]) == [0.0]
    assert time.monotonic() - started < 2.0  # one timeout, not one per test

    def broken_pool(backend=None):
        raise RLHubError("no sandbox here")

    monkeypatch.setattr(code_rewards, "default_pool", broken_pool)
    assert code_all_pass([fenced_python("def add(a, b):\n    return a + b")], tests=[ADD_TESTS]) == [0.0]


# --- the environments --------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", CODE_ENVS)
def test_gold_scores_full_marks_and_garbage_nothing(env_id):
    env = rlhub.make(env_id)
    examples = env.examples("train", limit=6) + env.examples("test", limit=6)
    golds = env.score_batch([env.gold_completion(ex) for ex in examples], examples)
    assert all(s.rewards == {"correct": 1.0, "pass_rate": 1.0, "format": 1.0} for s in golds), golds
    ex = examples[0]
    for text in [*GARBAGE, None, 12, b"\xff", [{"role": "user"}]]:
        score = env.score(text, ex)
        assert score.reward == 0.0 and not score.errors, (text if len(str(text)) < 50 else "long", score)
    wrong = env.score(fenced_python("def f(*args):\n    return None"), ex)
    assert wrong.rewards["correct"] == 0.0 and wrong.reward == pytest.approx(env.config.format_weight)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_codegen_reference_solutions_pass_their_generated_tests(difficulty):
    env = rlhub.make("codegen-v0", difficulty=difficulty, num_tests=4)
    examples = env.examples("train", limit=40)
    scores = env.score_batch([env.gold_completion(ex) for ex in examples], examples)
    assert all(s.rewards["correct"] == 1.0 for s in scores)
    for ex in examples:
        name = ex.info["family"]
        assert len(ex.info["tests"]) == 4 and all(t.startswith(f"assert _same({name}(") for t in ex.info["tests"])
        assert f"`{name}(" in ex.prompt[-1]["content"] and f"def {name}(" in ex.answer


def test_codegen_difficulty_widens_the_families():
    families = {
        d: {e.info["family"] for e in rlhub.make("codegen-v0", difficulty=d).examples(limit=300)} for d in (1, 3)
    }
    assert len(families[1]) == 5 and len(families[3]) == 15 and families[1] < families[3]


def test_codegen_is_reproducible_from_seed_and_index():
    env = rlhub.make("codegen-v0", difficulty=3)
    key = lambda exs: [(e.id, e.prompt, e.answer, e.info) for e in exs]
    first = env.examples("train", limit=20, seed=7)
    assert key(first) == key(rlhub.make("codegen-v0", difficulty=3).examples("train", limit=20, seed=7))
    assert key(first[5:]) == key(env.examples("train", limit=20, seed=7)[5:])
    assert key(first) != key(env.examples("train", limit=20, seed=8))
    assert key(first) != key(env.examples("test", limit=20, seed=7))


def test_codegen_tests_reject_objects_that_claim_equality():
    env = rlhub.make("codegen-v0")
    ex = next(e for e in env.examples("train", limit=50) if e.info["family"] == "count_vowels")
    liars = {
        "always-equal object": "class Anything:\n    def __eq__(self, other):\n        return True\n",
        "int subclass": "class Anything(int):\n    def __eq__(self, other):\n        return True\n",
    }
    for name, cls in liars.items():
        completion = fenced_python(f"{cls}\ndef count_vowels(s):\n    return Anything()")
        assert env.score(completion, ex).rewards["correct"] == 0.0, name


def test_codegen_config_is_validated():
    with pytest.raises(ConfigError, match=r"difficulty must be in 1\.\.3"):
        rlhub.make("codegen-v0", difficulty=4)
    with pytest.raises(ConfigError, match="num_tests"):
        rlhub.make("codegen-v0", num_tests=0)


def test_mbpp_runs_setup_code_and_every_test():
    env = rlhub.make("mbpp-v0")
    ex = next(e for e in env.examples("test") if e.info["setup_code"])
    assert ex.info["tests"][0] in ex.prompt[-1]["content"] and ex.info["tests"][1] not in ex.prompt[-1]["content"]
    hardcoded = env.score(fenced_python("def cart_total(cart):\n    return 16"), ex)  # passes the shown test only
    assert hardcoded.rewards["correct"] == 0.0 and hardcoded.rewards["pass_rate"] == pytest.approx(1 / 3)


def test_humaneval_every_canonical_solution_scores_one():
    env = rlhub.make("humaneval-v0")
    examples = env.examples("test")
    assert len(examples) == 164 and sum(len(ex.info["tests"]) > 1 for ex in examples) > 140
    scores = env.score_batch([env.gold_completion(ex) for ex in examples], examples)
    failed = [(ex.info["task_id"], s.rewards) for ex, s in zip(examples, scores) if s.reward != pytest.approx(1.1)]
    assert not failed


def test_humaneval_empty_bodies_fail_and_bare_bodies_complete_the_prompt():
    env = rlhub.make("humaneval-v0")
    examples = sorted(env.examples("test"), key=lambda ex: int(ex.info["task_id"].split("/")[1]))[:40]
    stubs = []
    for ex in examples:
        function = next(f for f in ast.parse(ex.answer).body if getattr(f, "name", "") == ex.info["entry_point"])
        function.body = [ast.Pass()]
        stubs.append(fenced_python(ast.unparse(function)))
    assert all(s.rewards["correct"] == 0.0 for s in env.score_batch(stubs, examples))
    bodies = [fenced_python(ex.answer.removeprefix(ex.info["prelude"])) for ex in examples[:5]]
    assert all(s.rewards["correct"] == 1.0 for s in env.score_batch(bodies, examples[:5]))


def test_humaneval_reads_a_local_jsonl(tmp_path):
    problem = {
        "task_id": "Local/0",
        "prompt": 'def double(x):\n    """Twice x."""\n',
        "entry_point": "double",
        "canonical_solution": "    return 2 * x\n",
        "test": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(0) == 0\n",
    }
    (tmp_path / "he.jsonl").write_text(json.dumps(problem) + "\n")
    env = rlhub.make("humaneval-v0", path=str(tmp_path / "he.jsonl"))
    [ex] = env.examples("test")
    assert ex.info["task_id"] == "Local/0" and len(ex.info["tests"]) == 2
    assert env.score(env.gold_completion(ex), ex).rewards["correct"] == 1.0
    with pytest.raises(ConfigError, match="few_shot must be 0"):
        rlhub.make("humaneval-v0", few_shot=1)


def test_grpo_two_steps_on_codegen(tiny_model_dir, tmp_path):
    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    out = tmp_path / "run"
    values = {  # the shipped recipe, shrunk to a tiny CPU model
        "model.name": tiny_model_dir,
        "model.dtype": "float32",
        "model.gradient_checkpointing": False,
        "training.mixed_precision": "no",
        "env.config": {"difficulty": 1, "pass_rate_weight": 0.5},
        "algorithm.group_size": 4,
        "training.max_steps": 2,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 8,
        "training.output_dir": str(out),
        "logging.wandb": False,
    }
    recipe_file = Path(__file__).resolve().parents[1] / "recipes" / "codegen-grpo-lora.yaml"
    recipe = load_recipe(recipe_file, values)
    assert recipe.env.id == "codegen-v0"
    result = train(recipe, recipe_name="tiny-code", progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2] and result.summary["steps"] == 2
    for name in ("correct", "pass_rate", "format"):  # 8 random tokens hold no fenced program, let alone one that passes
        assert rows[0][f"rewards/{name}/mean"] == 0.0 and rows[0][f"rewards/{name}/std"] == 0.0
    assert rows[0]["rewards/errors"] == 0.0


# --- forged solutions ------------------------------------------------------------------------------------

FALLBACK_PROBLEMS = ["HumanEval/32", "HumanEval/38", "HumanEval/44", "HumanEval/50", "HumanEval/53", "HumanEval/151"]
"""The problems with a case that runs as asserts (a loop, or names check() binds); the rest convert to calls."""


def test_humaneval_cases_convert_except_a_few_that_run_apart_from_the_solution():
    env = rlhub.make("humaneval-v0")
    examples = env.examples("test")
    cases = [(ex.info["task_id"], case) for ex in examples for case in ex.info["tests"]]
    fallback = sorted({task for task, case in cases if convert(case) is None}, key=lambda t: int(t.split("/")[1]))
    assert (len(cases), sum(convert(case) is not None for _, case in cases)) == (1133, 1127)
    assert fallback == FALLBACK_PROBLEMS


def forgeries(env, example) -> dict[str, list[str]]:
    """Forged solutions of the example's functions, as the validate probes write them, plus one more:
    a solution that redefines the helpers the tests take from the prompt (HumanEval/38's encode_cyclic)."""
    gold = env.gold_completion(example)
    target = probes._Target(example, gold, probes._answer_slot(gold), [])
    kinds = {p.name: list(p.completions) for p in probes._forgery_probes(target)}
    names = probes._functions(probes._answer_slot(gold).content)
    kinds["identity helpers"] = [fenced_python(probes._returning(names, "args[0] if args else None"))]
    return kinds


@pytest.mark.parametrize("env_id", CODE_ENVS)
def test_forged_solutions_earn_nothing(env_id):
    env = rlhub.make(env_id)
    examples = env.examples("test", limit=4, seed=0)
    if env_id == "humaneval-v0":
        by_id = {ex.info["task_id"]: ex for ex in env.examples("test")}
        examples += [by_id[task] for task in FALLBACK_PROBLEMS]
    rows = [(kind, ex, c) for ex in examples for kind, completions in forgeries(env, ex).items() for c in completions]
    scores = env.score_batch([c for _, _, c in rows], [ex for _, ex, _ in rows])
    earned = [(kind, ex.id, s.rewards) for (kind, ex, _), s in zip(rows, scores) if s.rewards["correct"] > 0]
    assert not earned
    assert len(rows) >= 4 * 12
