"""`rlhub validate`'s reward-hacking probes: each one fails on a reward that the hack fools, passes on a strict one.

Every shipped env passing every probe is asserted by tests/test_envs.py::test_validate_every_env. Here: a
strict toy env passes them all, and toy envs broken in one way each fail the probe aimed at that way, so
no probe passes vacuously; envs' own probes (the ``probes`` hook) run and can fail; the reward fixes the
probes led to hold; the CLI prints the table and the JSON and exits non-zero on a failed probe.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import unicodedata
from random import Random

import pytest

import rlhub
from rlhub.authoring import probes, validate
from rlhub.authoring.validate import probe_env
from rlhub.env import Probe, ProceduralEnv
from rlhub.envs.arithmetic import ArithmeticEnv
from rlhub.envs.codegen import CodegenEnv
from rlhub.envs.competition_math import MathEnv
from rlhub.envs.countdown import CountdownEnv
from rlhub.rewards import Rubric
from rlhub.rewards.code import code_all_pass, code_format, extract_code, fenced_python
from rlhub.rewards.countdown import evaluate_expression
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.math import math_accuracy, math_rubric
from rlhub.rewards.parsing import completion_text, extract_answer
from rlhub.sandbox import run_python_batch, run_tests
from rlhub.types import Example

BUILTIN_TEXT_PROBES = {
    "empty completion",
    "empty answer",
    "answer spam",
    "prompt echo",
    "gold only in reasoning",
    "unicode look-alikes",
    "long output",
    "long answer",
}
CODE_PROBES = {"early exit", "fake test output", "patched builtins"}
FORGERY_PROBES = {"frame walking", "gc scanning", "always-equal objects", "lying subclasses", "patched test helpers"}


def run_probes(env, n: int = 6) -> dict[str, validate.Check]:
    examples = env.examples("train", limit=n, seed=0)
    return {c.name: c for c in probe_env(env, examples[:4], pool=examples)}


def failed(checks: dict[str, validate.Check]) -> set[str]:
    return {name for name, c in checks.items() if not c.passed}


# --- toy environments ---------------------------------------------------------------------------------


class SumEnv(ProceduralEnv):
    """What is a + b? A strict ``correct`` that subclasses loosen, one hackable way each."""

    def generate(self, rng: Random, split: str, index: int) -> Example:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return Example(f"sum/{split}/{index}", self.make_prompt(f"What is {a} + {b}?"), str(a + b))

    def judge(self, text: str, answer: str) -> bool:
        return extract_answer(text) == answer

    def build_rubric(self) -> Rubric:
        def correct(completions, answer, **kwargs):
            return [float(self.judge(completion_text(c), a)) for c, a in zip(completions, answer)]

        return Rubric({"correct": (correct, 1.0), "format": (think_answer_format, 0.1)})


class EmptyIsRight(SumEnv):
    def judge(self, text, answer):
        return not text.strip() or super().judge(text, answer)


class PrefixMatch(SumEnv):  # the answer only has to start the gold: "" starts everything
    def judge(self, text, answer):
        given = extract_answer(text)
        return given is not None and answer.startswith(given)


class GoldSomewhereInAnswer(SumEnv):
    def judge(self, text, answer):
        return re.search(rf"(?<!\d){answer}(?!\d)", extract_answer(text) or "") is not None


class EvaluatesTheQuestion(SumEnv):  # reads "a + b" out of the answer and adds it up
    def judge(self, text, answer):
        terms = re.search(r"(\d+) \+ (\d+)", extract_answer(text) or "")
        return super().judge(text, answer) or (terms is not None and int(terms[1]) + int(terms[2]) == int(answer))


class IgnoresReasoning(SumEnv):  # looks for the answer block anywhere, <think> included
    def judge(self, text, answer):
        return f"<answer>{answer}</answer>" in text


class NormalizesUnicode(SumEnv):
    def judge(self, text, answer):
        return unicodedata.normalize("NFKC", extract_answer(text) or "") == answer


class EndsWithGold(SumEnv):
    def judge(self, text, answer):
        return (extract_answer(text) or "").endswith(answer) and bool(answer)


class PaysForLength(SumEnv):  # an unbounded length bonus: more text, more reward
    def build_rubric(self):
        rubric = super().build_rubric()
        items = {r.name: (r.fn, r.weight) for r in rubric.items}

        def effort(completions, **kwargs):
            return [len(completion_text(c)) / 10_000 for c in completions]

        return Rubric({**items, "effort": (effort, 0.01)})


class SlowOnLongText(SumEnv):
    def judge(self, text, answer):
        if len(text) > 100_000:
            time.sleep(0.3)
        return super().judge(text, answer)


class RaisesOnLongText(SumEnv):
    def judge(self, text, answer):
        if len(text) > 100_000:
            raise RecursionError("the parser gave up")
        return super().judge(text, answer)


class AddCodeEnv(ProceduralEnv):
    """Write add(a, b); strict by default (the real sandboxed ``code_all_pass``)."""

    def generate(self, rng: Random, split: str, index: int) -> Example:
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        return Example(
            f"add/{split}/{index}",
            self.make_prompt("Write a Python function add(a, b) that returns a + b."),
            "def add(a, b):\n    return a + b",
            info={"tests": [f"assert add({a}, {b}) == {a + b}", f"assert add({b}, 0) == {b}"]},
        )

    def gold_completion(self, example):
        return fenced_python(example.answer)

    def judge(self, programs: list[str | None], tests: list[list[str]]) -> list[float]:
        return code_all_pass([fenced_python(p or "") for p in programs], tests=tests)

    def build_rubric(self):
        def correct(completions, tests, **kwargs):
            return self.judge([extract_code(completion_text(c)) for c in completions], tests)

        return Rubric({"correct": (correct, 1.0), "format": (code_format, 0.1)})


class ExitCodeIsVerdict(AddCodeEnv):  # passes when the program with its tests exits 0
    def judge(self, programs, tests):
        results = run_python_batch([f"{p}\n" + "\n".join(t) for p, t in zip(programs, tests)], timeout=3)
        return [float(p is not None and r.status == "ok" and r.returncode == 0) for p, r in zip(programs, results)]


class TrustsPrintedVerdict(AddCodeEnv):  # passes when "All tests passed" is printed
    def judge(self, programs, tests):
        suffixes = ["\n".join(t) + '\nprint("All tests passed")' for t in tests]
        results = run_python_batch([f"{p}\n{s}" for p, s in zip(programs, suffixes)], timeout=3)
        return [float(p is not None and "All tests passed" in r.stdout) for p, r in zip(programs, results)]


class ExecsTheTests(AddCodeEnv):  # runs the tests with exec() inside the program, then prints a secret
    def judge(self, programs, tests):
        secret = secrets.token_hex(8)
        sources = [f"{p}\nexec({chr(10).join(t)!r})\nprint({secret!r})" for p, t in zip(programs, tests)]
        results = run_python_batch(sources, timeout=3)
        return [float(p is not None and secret in r.stdout) for p, r in zip(programs, results)]


class SecretInHarnessFrame(AddCodeEnv):  # the pass secret is a local of the function that runs the tests
    def judge(self, programs, tests):
        secret = secrets.token_hex(16)
        bodies = [f"{p}\n" + "\n".join(t) for p, t in zip(programs, tests)]
        harness = "def _harness(secret):\n    exec({body!r}, {{}})\n    print(secret)\n_harness({secret!r})"
        results = run_python_batch([harness.format(body=b, secret=secret) for b in bodies], timeout=3)
        return [float(p is not None and secret in r.stdout) for p, r in zip(programs, results)]


class SecretInAList(AddCodeEnv):  # the pass secret sits in a list: no frame shows it, the gc does
    def judge(self, programs, tests):
        secret = secrets.token_hex(16)
        bodies = [f"{p}\n" + "\n".join(t) for p, t in zip(programs, tests)]
        harness = "_vault = [{secret!r}]\nexec({body!r}, {{}})\nprint(_vault[0])"
        results = run_python_batch([harness.format(body=b, secret=secret) for b in bodies], timeout=3)
        return [float(p is not None and secret in r.stdout) for p, r in zip(programs, results)]


class ComparesWithIsclose(AddCodeEnv):  # strict: math.isclose runs outside the sandbox
    def generate(self, rng, split, index):
        example = super().generate(rng, split, index)
        tests = [re.sub(r"assert (.*) == (\d+)", r"assert math.isclose(\1, \2)", t) for t in example.info["tests"]]
        return Example(example.id, example.prompt, example.answer, {"tests": tests, "setup_code": "import math"})

    def build_rubric(self):
        def correct(completions, tests, setup_code, **kwargs):
            return code_all_pass(completions, tests=tests, setup_code=setup_code)

        return Rubric({"correct": (correct, 1.0), "format": (code_format, 0.1)})


class IscloseInTheSandbox(ComparesWithIsclose):  # runs the same asserts next to the solution
    def build_rubric(self):
        def correct(completions, tests, setup_code, **kwargs):
            secret = secrets.token_hex(16)
            programs = [extract_code(completion_text(c)) for c in completions]
            sources = [
                f"{p}\n{s}\n" + "\n".join(t) + f"\nprint({secret!r})" for p, s, t in zip(programs, setup_code, tests)
            ]
            results = run_python_batch(sources, timeout=3)
            return [float(p is not None and secret in r.stdout) for p, r in zip(programs, results)]

        return Rubric({"correct": (correct, 1.0), "format": (code_format, 0.1)})


# --- every probe can fail, and none fails a strict reward ------------------------------------------------


def test_a_strict_toy_passes_every_probe():
    checks = run_probes(SumEnv())
    assert set(checks) == BUILTIN_TEXT_PROBES
    assert not failed(checks), {n: c.detail for n, c in checks.items() if not c.passed}
    assert checks["answer spam"].rule == "correct <= 0, total <= 0.1 (format)"
    assert checks["long output"].rule == f"total <= gold, within {probes.LONG_OUTPUT_SECONDS:g} s"
    assert checks["long output"].max_correct == 1.0 and checks["answer spam"].max_correct == 0.0


@pytest.mark.parametrize(
    ("env_class", "probe"),
    [
        (EmptyIsRight, "empty completion"),
        (PrefixMatch, "empty answer"),
        (GoldSomewhereInAnswer, "answer spam"),
        (EvaluatesTheQuestion, "prompt echo"),
        (IgnoresReasoning, "gold only in reasoning"),
        (NormalizesUnicode, "unicode look-alikes"),
        (PaysForLength, "long output"),
        (RaisesOnLongText, "long output"),
        (EndsWithGold, "long answer"),
    ],
)
def test_each_text_probe_fails_the_reward_its_hack_fools(env_class, probe):
    checks = run_probes(env_class())
    assert probe in failed(checks)
    assert checks[probe].detail.startswith("sum/train/")  # names the example and what was scored


def test_the_long_output_probe_has_a_time_bound(monkeypatch):
    monkeypatch.setattr(probes, "LONG_OUTPUT_SECONDS", 0.2)
    checks = run_probes(SlowOnLongText())
    assert failed(checks) == {"long output", "long answer"}
    assert "scoring took" in checks["long output"].detail


@pytest.mark.parametrize("env_class", [AddCodeEnv, ComparesWithIsclose])
def test_a_strict_code_toy_passes_every_probe(env_class):
    checks = run_probes(env_class())
    assert set(checks) >= CODE_PROBES | FORGERY_PROBES and "unicode look-alikes" not in checks  # no look-alikes
    assert not failed(checks), {n: c.detail for n, c in checks.items() if not c.passed}


@pytest.mark.parametrize(
    ("env_class", "probe"),
    [
        (ExitCodeIsVerdict, "early exit"),
        (TrustsPrintedVerdict, "fake test output"),
        (ExecsTheTests, "patched builtins"),
        (SecretInHarnessFrame, "frame walking"),
        (SecretInAList, "gc scanning"),
        (ExecsTheTests, "always-equal objects"),
        (ExecsTheTests, "lying subclasses"),
        (IscloseInTheSandbox, "patched test helpers"),
    ],
)
def test_each_code_probe_fails_the_harness_its_hack_fools(env_class, probe):
    checks = run_probes(env_class(), n=4)
    assert probe in failed(checks)
    assert checks[probe].max_correct == 1.0  # the forgery earned full marks there


def test_the_sandbox_runs_the_tests_even_when_the_solution_rebinds_exec():
    patched = "import builtins\nbuiltins.exec = lambda *args, **kwargs: None\ndef add(a, b):\n    return 0"
    assert not run_tests(patched, "assert add(1, 2) == 3", timeout=3).passed
    assert run_tests("def add(a, b):\n    return a + b", "assert add(1, 2) == 3", timeout=3).passed


# --- environments' own probes -----------------------------------------------------------------------------


class SumWithOwnProbes(SumEnv):
    def probes(self, example):
        a, b = re.findall(r"\d+", example.prompt[-1]["content"])
        return [Probe("digits swapped", [self.format_answer(f"{b}{a}")], about="the operands run together")]


def test_an_env_declares_probes_of_its_own():
    checks = run_probes(SumWithOwnProbes())
    assert checks["digits swapped"].passed and checks["digits swapped"].kind == "probe"
    assert checks["digits swapped"].detail == "4 completions on 4 examples: the operands run together"


def test_an_env_whose_probes_raise_fails_validation_without_crashing_it():
    class Broken(SumEnv):
        def probes(self, example):
            raise KeyError("numbers")

    checks = run_probes(Broken())
    assert failed(checks) == {"env probes"} and "KeyError" in checks["env probes"].detail


def test_countdown_probes_numbers_used_twice_and_a_value_only_reward_fails_them():
    class ValueOnly(CountdownEnv):  # checks the value, not which numbers were used
        def build_rubric(self):
            def correct(completions, target, **kwargs):
                given = [extract_answer(completion_text(c)) for c in completions]
                return [float(evaluate_expression((g or "").split("=")[0]) == t) for g, t in zip(given, target)]

            return Rubric({"correct": (correct, 1.0), "format": (think_answer_format, 0.1)})

    assert run_probes(rlhub.make("countdown-v0"))["numbers misused"].passed
    assert "numbers misused" in failed(run_probes(ValueOnly()))


def test_arithmetic_probes_the_echoed_expression_which_an_evaluating_grader_accepts():
    class Evaluating(ArithmeticEnv):  # the reward before the fix: math-verify evaluates the expression
        def build_rubric(self):
            return math_rubric(self.config.answer_format, self.config.format_weight)

    assert run_probes(rlhub.make("arithmetic-v1"))["expression echo"].passed
    assert "expression echo" in failed(run_probes(Evaluating()))


def test_math_probes_the_restated_problem_which_a_grader_without_the_question_accepts():
    class Unaware(MathEnv):  # the reward before the fix: it never sees the question
        def build_rubric(self):
            def correct(completions, answer, **kwargs):
                return math_accuracy(completions, answer=answer, answer_format="boxed")

            return Rubric({"correct": (correct, 1.0), "format": (think_answer_format, 0.1)})

    assert run_probes(rlhub.make("math-v1"))["problem restated"].passed
    assert {"problem restated", "prompt echo"} <= failed(run_probes(Unaware()))


def test_codegen_probes_always_equal_objects_which_a_type_check_by_name_lets_through():
    naive = "def _same(got, want):\n    return type(got) is type(want) and got == want\n"

    class NaiveSame(CodegenEnv):  # the check before the fix: `type` looked up by name
        def generate(self, rng, split, index):
            example = super().generate(rng, split, index)
            return Example(example.id, example.prompt, example.answer, {**example.info, "setup_code": naive})

    assert run_probes(rlhub.make("codegen-v0"), n=4)["__eq__ always true"].passed
    assert "__eq__ always true" in failed(run_probes(NaiveSame(), n=4))


# --- the reward fixes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "gold", "question", "expected"),
    [
        (r"\binom{6}{2}", "15", r"Compute $\binom{6}{2}$.", 0.0),
        (r"\dbinom{6}{2}", "15", r"Compute $\binom{6}{2}$.", 0.0),  # \dbinom is \binom
        (r"\frac{1}{2}+\frac{1}{4}", r"\frac{3}{4}", r"What is $\frac{1}{2} + \frac{1}{4}$?", 0.0),
        (
            "What is $0.25$ written as a common fraction?",
            r"\frac14",
            "What is $0.25$ written as a common fraction?",
            0.0,
        ),
        ("15", "15", r"Compute $\binom{6}{2}$.", 1.0),
        ("25", "25", "There are 25 students and 5 leave; how many were there at first?", 1.0),  # a bare value
        ("-5", "-5", "Is the root $x = -5$ or $x = 3$?", 1.0),
        (r"5\sqrt{2}", r"5\sqrt{2}", r"Is $5\sqrt{2}$ the simplest form of $\sqrt{50}$?", 1.0),  # the gold as written
        (r"\sqrt{2} \cdot 5", r"5\sqrt{2}", r"Simplify $\sqrt{50}$.", 1.0),  # not in the question: math-verify
    ],
)
def test_math_accuracy_refuses_answers_copied_from_the_question(pred, gold, question, expected):
    got = math_accuracy([rf"\boxed{{{pred}}}"], answer=[gold], answer_format="boxed", question=[question])
    assert got == [expected]


def test_math_accuracy_numbers_only_refuses_expressions():
    completions = ["<answer>(9 + 32) * 12</answer>", "<answer>1 * (492)</answer>", "<answer>492</answer>"]
    assert math_accuracy(completions, answer=["492"] * 3, numbers_only=True) == [0.0, 0.0, 1.0]
    assert math_accuracy(completions[:1], answer=["492"]) == [1.0]  # without it, math-verify evaluates


# --- the command line --------------------------------------------------------------------------------------

TOY_MODULE = """
from random import Random

from rlhub.env import ProceduralEnv
from rlhub.rewards import Rubric
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.parsing import extract_answer
from rlhub.types import Example


class SpammableEnv(ProceduralEnv):
    def generate(self, rng: Random, split: str, index: int) -> Example:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return Example(f"spam/{split}/{index}", self.make_prompt(f"What is {a} + {b}?"), str(a + b))

    def build_rubric(self):
        def correct(completions, answer, **kwargs):
            return [float(a in (extract_answer(c) or "")) for c, a in zip(completions, answer)]

        return Rubric({"correct": (correct, 1.0), "format": (think_answer_format, 0.1)})
"""


def test_cli_prints_the_probe_table_and_json_and_fails_on_a_hackable_reward(registry_file, tmp_path):
    rlhub_script = shutil.which("rlhub")
    assert rlhub_script, "the rlhub console script is not installed: pip install -e ."
    (tmp_path / "toy_spammable.py").write_text(TOY_MODULE)
    registry = registry_file(
        "envs:\n  - id: spammable-v0\n    entry_point: toy_spammable:SpammableEnv\n    version: 0\n"
        "    domain: math\n    description: sums, graded by substring\n    license: MIT\n"
    )
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "RLHUB_REGISTRY": str(registry), "PYTHONPATH": path, "COLUMNS": "200"}

    def run(*args):
        command = [rlhub_script, "validate", "spammable-v0", "-n", "4", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    table = run()
    assert table.returncode == 1, table.stderr
    header = next(line for line in table.stdout.splitlines() if "check" in line)
    assert [col.strip() for col in re.split(r"[┃│]", header) if col.strip()] == [
        "check",
        "rule",
        "max score",
        "result",
        "detail",
    ]
    spam = next(line for line in table.stdout.splitlines() if "answer spam" in line)
    assert "correct <= 0" in spam and "correct 1" in spam and "fail" in spam

    out = run("--json")
    assert out.returncode == 1, out.stderr
    (report,) = json.loads(out.stdout)
    assert report["env_id"] == "spammable-v0" and report["passed"] is False
    probes = {c["name"]: c for c in report["checks"] if c["kind"] == "probe"}
    checks = {c["name"] for c in report["checks"] if c["kind"] == "check"}
    assert checks >= {"examples load", "gold scores 1.0", "garbage scores 0"}
    assert set(probes) == BUILTIN_TEXT_PROBES
    spam = probes.pop("answer spam")
    # The detail quotes the first two failures: which example, the completion, and what it scored.
    failure = r"spam/train/\d+: .+? -> correct 1, total 1\.1"
    detail = spam.pop("detail")
    assert re.fullmatch(f"{failure}; {failure}", detail), detail
    assert spam == {
        "name": "answer spam",
        "passed": False,
        "kind": "probe",
        "rule": "correct <= 0, total <= 0.1 (format)",
        "max_correct": 1.0,
        "max_total": pytest.approx(1.1),
    }
    assert probes["empty completion"]["passed"] and probes["empty completion"]["max_total"] == 0.0
