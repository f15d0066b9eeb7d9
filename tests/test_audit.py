"""`rlhub validate --audit`: its sets are right by construction, it catches broken verifiers, and it reports.

The generators are checked against readings of their own here (a number read back with Fraction, an
expression evaluated by Python, a query run on SQLite, a program run on its tests, a response compared
word by word), so that an audit failure always means the verifier is wrong, never the case. Then toy envs
broken one way each (a reward that accepts any answer, one that compares strings exactly, a slow one)
fail the audit on the figure they break; the CLI prints the row and exits non-zero; the card shows it.
"""

from __future__ import annotations

import re
import sqlite3
import time
from fractions import Fraction
from itertools import permutations
from random import Random

import pytest
from click.testing import CliRunner

import rlhub
from rlhub.authoring.audit import (
    AuditReport,
    Cases,
    answers,
    audit,
    audit_env,
    audit_section,
    expressions,
    programs,
    queries,
    record,
    responses,
    store,
)
from rlhub.authoring.audit.run import _targets, audit_cases, policies
from rlhub.authoring.envcard import env_card
from rlhub.authoring.probes import _answer_slot, _Target
from rlhub.cli import main
from rlhub.env import ProceduralEnv
from rlhub.rewards import Rubric
from rlhub.rewards.format import think_answer_format
from rlhub.rewards.parsing import completion_text, extract_answer, strip_think
from rlhub.rewards.tool_calls import parse_tool_calls
from rlhub.types import Example, last_assistant_text

# ---------------------------------------------------------------------------------------------------------------
# The sets are right by construction
# ---------------------------------------------------------------------------------------------------------------

QUESTION = "A ticket costs $3 and 40 items are sold; what percent of the items are left?"
REASONINGS = ("So 40 - 16 = {gold} items.", "In all ${gold}.", "That is {gold}% of them.", "Working it out.")
"""How a gold's reasoning may write its number: with a unit, a currency sign, a percent sign, or not at all."""


def _target(gold: str, layout: str = "tags", question: str = QUESTION, reasoning: str = REASONINGS[0]) -> _Target:
    text = f"<think>{reasoning.format(gold=gold)}</think>\n" + (
        f"<answer>{gold}</answer>" if layout == "tags" else f"The answer is \\boxed{{{gold}}}."
    )
    example = Example("toy/0", [{"role": "user", "content": question}], gold)
    return _Target(example, text, _answer_slot(text), [])


_GROUPED = re.compile(r"(-?)([1-9]\d{0,2}(?:(,|\\,|\{,\}| )\d{3})(?:\3\d{3})*)(\.\d+)?")


def read_number(text: str) -> Fraction | None:
    """A number written in any of the ways a careful grader accepts, read independently of the audit."""
    text = text.strip().replace("\u2212", "-").replace("\\dfrac", "\\frac")
    for pattern in (r"\*\*(.*)\*\*", r"\$(.*)\$", r"\\\((.*)\\\)", r"\\boxed\{(.*)\}"):
        text = re.sub(rf"^{pattern}$", r"\1", text).strip()
    text = re.sub(r"(?:\\text\{\s*\w+\}|\s+(?:dollars|items)|\\?%|\.)$", "", text).strip()
    text = re.sub(r"^\\\$", "", text)
    grouped = _GROUPED.fullmatch(text)
    if grouped:
        text = grouped[1] + re.sub(r"\D", "", grouped[2]) + (grouped[4] or "")
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return Fraction(text)
    m = re.fullmatch(r"(-?)(?:\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))", text)
    if m:
        value = Fraction(int(m[2] or m[4]), int(m[3] or m[5]))
        return -value if m[1] else value
    return None


@pytest.mark.parametrize("gold", ["24", "-7", "12500", "0.75", "\\frac{3}{4}", "-3/8", "1000", "250"])
@pytest.mark.parametrize("layout", ["tags", "boxed"])
def test_every_number_rewrite_keeps_the_value_and_every_near_miss_changes_it(gold, layout):
    value = answers.value_of(gold)
    mode = "tags" if layout == "tags" else "boxed"
    kinds = set()
    for reasoning in REASONINGS:
        cases = answers.cases(_target(gold, layout, reasoning=reasoning))
        accepted = [extract_answer(c.completion, mode) for c in cases.accept]
        assert all(read_number(a) == value for a in accepted), [a for a in accepted if read_number(a) != value]
        rejected = [extract_answer(c.completion, mode) for c in cases.reject]
        assert rejected and all(read_number(r) != value for r in rejected), rejected
        assert {"off by one", "sign flip", "times ten", "extra term"} <= {c.kind for c in cases.reject}
        kinds |= {c.kind for c in cases.accept}
    assert {"surrounding spaces", "currency sign", "currency word", "percent sign", "unit word"} <= kinds
    if abs(value) >= 1000:
        assert {"comma thousands", "thin-space thousands", "space thousands"} <= kinds


def test_units_and_currency_follow_the_reasoning_not_the_question():
    hours = "A worker earns $12 an hour and is paid $96. How many hours did she work?"
    kinds = {c.kind for c in answers.cases(_target("8", question=hours, reasoning="She worked 8 hours.")).accept}
    assert "unit word" in kinds and not {"currency sign", "currency word", "percent sign"} & kinds


def test_latex_near_misses_are_kept_only_when_sympy_proves_them_different():
    t = _target("5\\sqrt{2}", "boxed", question="Simplify $\\sqrt{50}$.")
    cases = answers.cases(t)
    assert {c.kind for c in cases.reject} == {"a number off by one", "sign flip"}
    assert "5\\sqrt{2}" in extract_answer(cases.accept[0].completion, "boxed")
    assert not answers.differs("\\frac{2}{4}", "\\frac{1}{2}") and answers.differs("(-3,2)", "(-2,2)")
    assert answers.differs("x^2", "x^3") and not answers.differs("\\text{no}", "\\text{parse")


def _evaluate(expression: str) -> tuple[float, list[int]] | None:
    if not re.fullmatch(r"[\d+\-*/() ]+", expression):
        return None
    try:
        return eval(expression), sorted(map(int, re.findall(r"\d+", expression)))  # digits and operators only
    except (SyntaxError, ZeroDivisionError):
        return None


def test_countdown_rewrites_reach_the_target_with_the_numbers_and_near_misses_do_not():
    env = rlhub.make("countdown-v0")
    for t in _targets(env, env.examples("test", limit=6, seed=0)):
        target, numbers = t.example.info["target"], sorted(t.example.info["numbers"])
        cases = expressions.cases(t)
        for case in cases.accept:
            value, used = _evaluate(extract_answer(case.completion))
            assert abs(value - target) < 1e-9 and used == numbers, case
        for case in cases.reject:
            got = _evaluate(extract_answer(case.completion))
            assert got is None or abs(got[0] - target) > 1e-9 or got[1] != numbers, case
        assert {"operands commuted", "a term dropped", "a number off by one"} <= {
            c.kind for c in cases.accept + cases.reject
        }


TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, x INTEGER, y INTEGER)"


def _sql_target(gold: str) -> _Target:
    rows = [[1, "a", 1, None], [2, "b", 5, 3], [3, "a", 9, 4]]  # names repeat, ids and x do not
    info = {"databases": [{"ddl": [TABLE], "rows": {"t": rows}}], "ordered": False}
    text = f"<think>Query.</think>\n<answer>{gold}</answer>"
    return _Target(Example("sql/0", [{"role": "user", "content": "?"}], gold, info), text, _answer_slot(text), [])


def _run(query: str, rows: list[list]) -> list:
    db = sqlite3.connect(":memory:")
    db.execute(TABLE)
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    return sorted(db.execute(query).fetchall(), key=repr)


def test_sql_rewrites_return_the_gold_rows_and_near_misses_have_a_witness_database():
    gold = "SELECT name FROM t WHERE x > 5"
    cases = queries.cases(_sql_target(gold))
    rows = [[1, "a", 1, None], [2, "b", 5, 3], [3, "a", 9, 4], [4, "a", 6, None]]
    for case in cases.accept:
        query = extract_answer(case.completion).removeprefix("```sql").removesuffix("```").strip()
        assert _run(query, rows) == _run(gold, rows), case.kind
    kinds = {c.kind for c in cases.accept}
    assert {"```sql fence", "keywords in lower case", "table aliases", "column alias"} <= kinds
    near = {extract_answer(c.completion): c.kind for c in cases.reject}
    assert near["SELECT name FROM t WHERE x >= 5"] == "comparison boundary moved"  # separated by the given rows
    assert near["SELECT name FROM t WHERE x > 6"] == "a literal off by one"  # only a copy with x = 6 separates it
    assert "SELECT DISTINCT name FROM t WHERE x > 5" in near  # a copy with x = 6 in another "a" row separates it
    unique = queries.cases(_sql_target("SELECT id FROM t WHERE x > 5"))
    assert "DISTINCT added" not in {c.kind for c in unique.reject}  # ids never repeat: no database separates it


def test_code_rewrites_pass_the_gold_tests():
    env = rlhub.make("codegen-v0")
    kinds = set()
    for t in _targets(env, env.examples("test", limit=5, seed=0)):
        cases = programs.cases(t)
        assert not cases.reject
        kinds |= {c.kind for c in cases.accept}
        for case in cases.accept:
            code = re.search(r"```\w*\n(.*)\n```", last_assistant_text(case.completion), re.DOTALL)[1]
            scope = {"_same": lambda a, b: a == b and type(a) is type(b)}
            exec(code, scope)  # the gold's own rewrite: trusted code
            for test in t.example.info["tests"]:
                exec(test, scope)
    assert {"fence without a language tag", "locals renamed", "return through a variable"} <= kinds


def test_renaming_and_return_rewrites_keep_names_the_function_reads_from_outside():
    code = "import math\nLIMIT = 3\n\ndef f(xs):\n    total = sum(xs)\n"
    code += "    return [math.sqrt(total) for i in range(LIMIT)]\n"
    renamed = programs.renamed_locals(code)
    assert "total_1 = sum(xs)" in renamed and "LIMIT" in renamed and "math.sqrt" in renamed and "def f(xs)" in renamed
    assert "_value = " in programs.returns_through_variable(code)
    assert programs.expected_literal("assert _same(f([1]), [2, 3])") == [2, 3]
    assert programs.expected_literal("assert f(1) == 'x'") == "x"


def _fits(calls, truth, functions) -> bool:
    """BFCL's rule read plainly: one call per entry, names equal, arguments among the acceptable values (strings
    compared as BFCL's grader does: without spaces and ``, . / - _ * ^``, in lower case)."""
    required = {f["name"]: set(f["parameters"].get("required", [])) for f in functions}

    def same(value, option):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return isinstance(option, (int, float)) and not isinstance(option, bool) and value == option
        if isinstance(value, str) and isinstance(option, str):
            plain = lambda s: re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')
            return plain(value) == plain(option)
        return value == option

    def call_fits(call, entry):
        (name, options), arguments = next(iter(entry.items())), call.arguments
        if call.name != name or not required[name] <= set(arguments) or not set(arguments) <= set(options):
            return False
        given = all(any(same(v, o) for o in options[k]) for k, v in arguments.items())
        return given and all("" in v for k, v in options.items() if k not in arguments)

    return len(calls) == len(truth) and any(all(map(call_fits, calls, p)) for p in permutations(truth))


def test_tool_call_rewrites_fit_the_ground_truth_and_near_misses_do_not():
    env = rlhub.make("bfcl-v0")
    for t in _targets(env, env.examples("test", limit=6, seed=0)):
        cases = audit_cases(env, t)
        truth, functions = t.example.answer, t.example.info["functions"]
        for case in cases.accept:
            assert _fits(parse_tool_calls(case.completion), truth, functions), case
        for case in cases.reject:
            assert not _fits(parse_tool_calls(case.completion), truth, functions), case


def _breaks(kind: str, c: dict, text: str) -> bool:
    n, words = c.get("n", 0), len(re.findall(r"\w+", text))
    return {
        "word_count": lambda: words > n if c["relation"] == "at most" else words < n,
        "sentence_count": lambda: len(re.findall(r"[.!?]+", text)) + 1 < n if c["relation"] == "at least" else True,
        "include_keywords": lambda: c["keywords"][0].lower() not in text.lower(),
        "forbidden_words": lambda: re.search(rf"\b{c['forbidden'][0]}\b", text, re.IGNORECASE) is not None,
        "lowercase": lambda: text != text.lower(),
        "uppercase": lambda: text != text.upper(),
        "no_commas": lambda: "," in text,
        "bullets": lambda: len(re.findall(r"^\s*[*-]\s", text, re.MULTILINE)) == n - 1,
        "sections": lambda: len(re.findall(r"^SECTION \d", text, re.MULTILINE)) == n - 1,
        "title": lambda: "<<" not in text,
        "end_phrase": lambda: not text.rstrip().endswith(c["phrase"]),
        "start_phrase": lambda: not text.startswith(c["phrase"]),
        "postscript": lambda: "P.S." not in text.upper(),
    }.get(kind, lambda: True)()


def test_ifeval_rewrites_change_only_layout_and_near_misses_break_their_constraint():
    env = rlhub.make("ifeval-v1")
    for t in _targets(env, env.examples("test", limit=24, seed=0)):
        cases = responses.cases(t)
        gold = t.text
        for case in cases.accept:
            text = strip_think(completion_text(case.completion)).replace("**", "").replace("## ", "")
            text = re.sub(r"^- ", "* ", text.removeprefix("```json\n").removesuffix("\n```"), flags=re.MULTILINE)
            assert text.split() == gold.split(), case.kind
            assert len(re.split(r"\n\s*\n", text.strip())) == len(re.split(r"\n\s*\n", gold.strip())), case.kind
        for case in cases.reject:
            rules = [c for c in t.example.info["constraints"] if case.kind == f"breaks {c['kind']}"]
            assert all(_breaks(c["kind"], c, completion_text(case.completion)) for c in rules), case
        assert {"empty response", "unfinished response"} <= {c.kind for c in cases.reject}


def test_word_answers_refuse_other_names_and_accept_any_case():
    env = rlhub.make("retrieval-v0")
    targets = _targets(env, env.examples("test", limit=3, seed=0))
    cases = answers.cases(targets[0])
    gold = targets[0].slot.content
    said = lambda case: extract_answer(last_assistant_text(case.completion))
    assert {said(c) for c in cases.accept} >= {gold.lower(), gold.upper()}
    assert {said(c) for c in cases.reject if c.kind == "another example's answer"} == {
        t.slot.content for t in targets[1:]
    }


# ---------------------------------------------------------------------------------------------------------------
# The audit catches broken verifiers
# ---------------------------------------------------------------------------------------------------------------


class SumEnv(ProceduralEnv):
    """What is a + b? (Sums over 1000, so that thousands separators are audited too.)"""

    def generate(self, rng: Random, split: str, index: int) -> Example:
        a, b = rng.randint(500, 999), rng.randint(500, 999)
        return Example(f"sum/{split}/{index}", self.make_prompt(f"What is {a} + {b}?"), str(a + b))

    def judge(self, given: str | None, answer: str) -> bool:
        digits = re.sub(r"^\*\*|\*\*$|^\$|\$$|^\\\(|\\\)$|^\\boxed\{|\}$|\.0$|\.$|\\,|,|\{,\}| ", "", given or "")
        return digits == answer

    def build_rubric(self) -> Rubric:
        def correct(completions, answer, **kwargs):
            return [float(self.judge(extract_answer(completion_text(c)), a)) for c, a in zip(completions, answer)]

        return Rubric({"correct": (correct, 1.0), "format": (think_answer_format, 0.1)})


class AcceptsAnything(SumEnv):
    def judge(self, given, answer):
        return given is not None


class ComparesStrings(SumEnv):
    def judge(self, given, answer):
        return given == answer


class Slow(SumEnv):
    audit_bounds = {"seconds": 0.01}

    def judge(self, given, answer):
        time.sleep(0.02)
        return super().judge(given, answer)


def test_a_careful_toy_verifier_passes():
    report = audit(SumEnv(), n=3)
    assert report.passed, report.problems
    assert report.fn.failed == 0 and report.fn.total > 20 and report.fp.failed == 0 and report.fp.total > 20
    assert report.ladder == {"oracle": 1.0, "random": 0.0, "heuristic": 0.0}
    assert report.slowest_s < 5 and report.completions == report.fn.total + report.fp.total + 3 * 3


def test_a_verifier_that_accepts_anything_fails_on_false_positives_and_the_random_policy():
    report = audit(AcceptsAnything(), n=3)
    assert report.fp.value == 1.0 and not report.passed
    problems = "\n".join(report.problems)
    assert "AcceptsAnything: false positives 100.0%" in problems and "[off by one]" in problems
    assert "the random policy scores 1.000 > 0.05" in problems


def test_a_verifier_that_compares_strings_fails_on_false_negatives():
    report = audit(ComparesStrings(), n=3)
    assert report.fn.value > 0.5 and report.fp.failed == 0 and not report.passed
    assert "false negatives" in report.problems[0] and report.fn.kinds["thin-space thousands"] == [3, 3]
    assert len(report.fn.examples) == 3


def test_slow_scoring_fails_its_bound_and_bounds_are_the_envs_own():
    report = audit(Slow(), n=1)
    assert report.bounds["seconds"] == 0.01 and report.slowest_s >= 0.02
    assert any("scoring took" in p for p in report.problems)

    class Lenient(AcceptsAnything):
        audit_bounds = {"fp": 1.0, "random": 1.0, "heuristic": 1.0}

    assert audit(Lenient(), n=2).passed

    class Misspelt(SumEnv):
        audit_bounds = {"false_positives": 0.1}

    assert "unknown keys ['false_positives']" in audit(Misspelt(), n=1).problems[0]


def test_an_env_hook_replaces_the_generated_cases():
    class Hooked(SumEnv):
        def audit_cases(self, example):
            return [f"<answer>{example.answer}</answer>"], [f"<answer>{int(example.answer) + 2}</answer>"]

    report = audit(Hooked(), n=2)
    assert (report.fn.total, report.fp.total) == (2, 2) and set(report.fn.kinds) == {"env's own"}


def test_a_gold_layout_the_audit_does_not_know_fails_with_the_fix():
    class Unknown(SumEnv):
        def gold_completion(self, example):
            return f"It is {example.answer}."

    report = audit(Unknown(), n=1)
    assert "an audit_cases(example) method" in report.problems[0] and report.ladder == {"oracle": 0.0}


# ---------------------------------------------------------------------------------------------------------------
# Real envs, the CLI and the card
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["countdown-v0", "bfcl-v0", "codegen-v0"])
def test_shipped_envs_with_careful_verifiers_pass(env_id):
    report = audit_env(env_id, n=2)
    assert report.passed, report.problems
    assert report.fn.total > 0 and report.ladder["oracle"] == 1.0 and report.ladder["random"] == 0.0
    assert (report.fp.total > 0) == (env_id != "codegen-v0")  # code: the tests decide, no FP set


def test_a_case_sensitive_call_matcher_fails_the_audit(monkeypatch):
    """BFCL's grader standardises strings (case, spaces, ``, . / - _ * ^``); the audit's accept set spells a string
    argument in capitals and without those marks, so a matcher that compares strings exactly is caught (the
    cross-check with BFCL's own checker found the audit blind to it)."""
    from rlhub.rewards import tool_calls

    assert audit_env("bfcl-v0", n=8).passed
    monkeypatch.setattr(tool_calls, "standardize_string", lambda text: text)
    report = audit_env("bfcl-v0", n=8)
    assert not report.passed and report.fn.failed > 0, report.problems
    failing_kinds = {kind for kind, (failed, _) in report.fn.kinds.items() if failed}
    assert failing_kinds <= {"a string in capitals", "a string without ignored marks", "another acceptable value"}
    assert {"a string in capitals", "a string without ignored marks"} & failing_kinds


def test_an_env_that_acts_through_tools_is_audited_on_whole_episodes():
    """repofix-v0's edits, not its last turn (``submit()``), decide the reward: the ladder's random and heuristic
    answers replace the whole episode (before, they kept the gold's edit turns and scored 1.0), and its own cases
    (the fix with context, reordered, ended without submit; the fix undone, after submit, incomplete) hold."""
    report = audit_env("repofix-v0", n=3)
    assert report.passed, report.problems
    assert report.ladder == {"oracle": 1.0, "random": 0.0, "heuristic": 0.0}
    assert report.fn.total >= 12 and report.fp.total >= 9


def test_policies_and_cases_are_reproducible():
    env = rlhub.make("arithmetic-v1")
    (t,) = _targets(env, env.examples("test", limit=1, seed=0))
    first, again = policies(t, Random("audit/x")), policies(t, Random("audit/x"))
    assert first == again and first["oracle"] == t.gold
    assert audit_cases(env, t) == audit_cases(env, t)


def _failing(env_id: str, n: int = 16, **config) -> AuditReport:
    report = AuditReport(env_id, examples=1, ladder={"oracle": 1.0})
    report.fp.add("off by one", True, "toy/0 [off by one]: '<answer>3</answer>' -> 1")
    return report


def test_cli_prints_a_row_per_env_and_exits_non_zero_on_a_broken_bound(monkeypatch, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["validate", "countdown-v0", "--audit", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "verifier audit" in result.output and re.search(r"countdown-v0 .*0\.0% \(0/\d+\)", result.output)

    monkeypatch.setattr("rlhub.authoring.audit.audit_env", _failing)
    monkeypatch.setattr(store, "audit_path", lambda: tmp_path / "audit.json")
    result = runner.invoke(main, ["validate", "countdown-v0", "--audit", "--record", "-n", "2"])
    assert result.exit_code == 1
    assert "countdown-v0: false positives 100.0% (1/1) above 1%, e.g. toy/0 [off by one]" in " ".join(
        result.output.split()
    )
    recorded = store.load_audits(tmp_path / "audit.json")["envs"]["countdown-v0"]
    assert recorded["fp"]["failed"] == 1 and not recorded["passed"] and {"commit", "date"} <= set(recorded)

    refused = runner.invoke(main, ["validate", "countdown-v0", "--record"])
    assert refused.exit_code == 1 and "add --audit" in refused.output


def test_the_card_shows_the_rates_with_counts_the_slowest_scoring_and_the_ladder(tmp_path):
    report = audit(ComparesStrings(), n=2)
    path = record([report], tmp_path / "audit.json")
    section = "\n".join(audit_section("ComparesStrings", level=2, data=store.load_audits(path)))
    assert "## Verifier audit" in section and "**outside its bounds**" in section
    assert f"| false negatives | {100 * report.fn.value:.1f}% ({report.fn.failed} of {report.fn.total}) |" in section
    assert f"| false positives | 0.0% (0 of {report.fp.total}) | at most 1% |" in section
    assert (
        f"(of {report.completions} completions)" in section
        and "| oracle policy: the gold completion | 1.000" in section
    )
    assert "random policy" in section and "heuristic policy: the largest number of the question" in section
    assert "`thin-space thousands` 2 of 2" in section
    assert "_Not audited yet; `rlhub validate other-v0 --audit --record` audits it._" in audit_section(
        "other-v0", data={"envs": {}}
    )
    assert "## Verifier audit" in env_card("arithmetic-v1")


def test_cases_hold_completions_in_the_gold_layout():
    t = _target("24")
    assert Cases() == Cases([], []) and all(c.completion.startswith("<think>") for c in answers.cases(t).accept)
