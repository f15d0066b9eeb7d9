r"""Answers per second and accuracy of rlhub's ``math_equal`` against calling math-verify directly.

    python bench/math_verification.py [--gsm8k 400] [--repeats 5] [--json out.json]

One run times, side by side on the same (prediction, gold) pairs:

- ``math_equal``: rlhub's comparison, one pair per call (plain numbers exactly in-process, the rest in
  a math-verify worker process);
- ``math_equal_batch``: the same over the whole list, slow pairs spread over its worker pool (what the
  ``math_accuracy`` reward calls);
- math-verify ``$…$``: ``verify(parse(f"${gold}$"), parse(f"${pred}$"))``, the usual direct call;
- math-verify raw: ``verify(parse(gold), parse(pred))``.

The pairs, each labelled equal or not by construction:

- gsm8k: the gold answers of the first ``--gsm8k`` problems of the GSM8K test set, each paired with
  predictions a model writes: equal forms (``1234``, ``1,234``, ``$1234``, ``1234.00``, ``1234 dollars``
  for money questions) and wrong ones (off by one, a wrong value in an equal-looking form, ``1234.5``,
  ten times the value, the negated value);
- latex: MATH-style LaTeX pairs written here: fractions, roots, pi, intervals, points and sets,
  polynomials, powers, complex numbers, matrices, units;
- hedge: predictions that list several candidates for a single-value gold (``1, 2, 3`` for ``2``),
  which a grader must not accept.

Each method is timed ``--repeats`` times, methods interleaved, caches cleared before every timing
(rlhub's verdict cache and math-verify's parse caches); the median is reported. First, one untimed
pass of every method over every pair does the imports, starts rlhub's workers and fills sympy's
expression cache in every process alike, so the figures are for warm processes. Accuracy is against
the labels; agreement is the share of pairs on which two methods give the same verdict.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from math_verify import parse, verify
from math_verify.parser import parse_expr_cached, parse_latex_cached
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.common import machine_info
from rlhub.rewards import math as rlhub_math
from rlhub.rewards.math import gold_answer, math_equal, math_equal_batch

DEFAULT_GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


class Pair(NamedTuple):
    pred: str
    gold: str
    equal: bool
    category: str


# (prediction, gold, equal) written by hand; labels are mathematical truth, not any grader's verdict.
LATEX_PAIRS: list[tuple[str, str, bool]] = [
    # fractions
    (r"\frac{1}{2}", r"\frac12", True),
    ("0.5", r"\frac{1}{2}", True),
    (r"\dfrac{3}{4}", r"\frac{3}{4}", True),
    (r"\frac{6}{8}", r"\frac{3}{4}", True),
    (r"-\frac{3}{4}", r"\frac{-3}{4}", True),
    (r"\frac{7}{2}", "3.5", True),
    (r"\tfrac{5}{6}", r"\frac{5}{6}", True),
    ("1/2", r"\frac{1}{2}", True),
    (r"\frac{3}{4}", r"\frac{4}{3}", False),
    ("0.33", r"\frac{1}{3}", False),
    (r"\frac{2}{3}", "0.6", False),
    (r"\frac{5}{12}", r"\frac{5}{13}", False),
    # roots
    (r"2\sqrt{2}", r"\sqrt{8}", True),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    (r"\sqrt{3}", "3^{1/2}", True),
    (r"3\sqrt{5}", r"\sqrt{45}", True),
    (r"\frac{1+\sqrt{5}}{2}", r"\frac{\sqrt{5}+1}{2}", True),
    (r"\sqrt[3]{27}", "3", True),
    (r"\sqrt{2}", r"\sqrt{3}", False),
    (r"\sqrt{12}", r"3\sqrt{2}", False),
    ("1.414", r"\sqrt{2}", False),
    (r"\frac{1-\sqrt{5}}{2}", r"\frac{1+\sqrt{5}}{2}", False),
    # pi
    (r"2\pi", r"\pi \cdot 2", True),
    (r"\frac{\pi}{2}", r"\frac{1}{2}\pi", True),
    (r"\frac{3\pi}{4}", r"\frac{3}{4}\pi", True),
    (r"16\pi", r"16 \pi", True),
    (r"\pi r^2", r"r^2\pi", True),
    ("3.14", r"\pi", False),
    (r"4\pi", r"2\pi", False),
    (r"8\pi", r"\pi", False),
    # intervals
    ("(-2, 2)", "(-2,2)", True),
    (r"(-\infty, 0] \cup [1, \infty)", r"(-\infty,0]\cup[1,\infty)", True),
    (r"[0, \infty)", r"[0,\infty)", True),
    (r"\left( -\frac{1}{2}, 4 \right]", r"(-\frac12, 4]", True),
    ("[1, 3)", "[1,3]", False),
    (r"(-\infty, 0) \cup (1, \infty)", r"(-\infty,0]\cup[1,\infty)", False),
    ("(-3, 5]", "(3,5]", False),
    # points, sets, several roots
    ("(2, -3)", "(2,-3)", True),
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}", True),
    ("2, -3", "-3, 2", True),
    ("(-3, 2)", "(2,-3)", False),
    ("2, 3", "2, 4", False),
    # expressions
    ("(x+1)^2", "x^2+2x+1", True),
    ("2x+1", "1+2x", True),
    ("x^2-1", "(x-1)(x+1)", True),
    (r"\frac{x}{2}", "0.5x", True),
    ("3a+2b", "2b+3a", True),
    ("x^2+1", "(x+1)^2", False),
    ("a^2b", "ab^2", False),
    ("2x-1", "2x+1", False),
    # powers, logs, trig, complex numbers, infinity
    (r"1.5\times10^{3}", "1500", True),
    ("2^{10}", "1024", True),
    ("10^{-2}", "0.01", True),
    (r"\log_2 8", "3", True),
    (r"\sin\frac{\pi}{6}", r"\frac{1}{2}", True),
    ("3+4i", "4i+3", True),
    (r"\infty", r"\infty", True),
    ("2^{10}", "1000", False),
    ("3-4i", "3+4i", False),
    (r"-\infty", r"\infty", False),
    # matrices and vectors
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", True),
    (r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", False),
    # signs, units, answer prefixes
    ("-7", "-7", True),
    (r"\$18.90", "18.90", True),
    (r"5\text{ cm}", "5", True),
    (r"30^\circ", "30", True),
    ("x=5", "5", True),
    ("7", "-7", False),
    (r"6\text{ cm}", "5", False),
    ("x=4", "5", False),
    # MATH's own ways of writing answers
    ("1{,}234", "1234", True),
    (r"5,\!000", "5000", True),
    (r"2\frac{1}{2}", r"\frac{5}{2}", True),
    (r"\frac{5}{3}", r"1\frac{2}{3}", True),
    (r"0.\overline{3}", r"\frac{1}{3}", True),
    (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}", True),
    (r"25\%", "25", True),
    (r"x \in [2, 5]", "[2,5]", True),
    ("y = 2x + 3", "y=2x+3", True),
    (r"\text{Monday}", r"\text{Monday}", True),
    ("1{,}235", "1234", False),
    (r"-\frac{1}{2}", r"\frac{1}{2}", False),
    (r"\text{Tuesday}", r"\text{Monday}", False),
    (r"x \in [2, 6]", "[2,5]", False),
]

HEDGE_PAIRS: list[tuple[str, str]] = [
    ("1, 2, 3", "2"),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", "7"),
    (r"x = 3 \text{ or } x = 4", "3"),
    (r"2 \quad 3", "3"),
    ("17; 18; 19", "18"),
    (r"\frac{1}{2}, \frac{1}{3}", r"\frac{1}{3}"),
    (r"$4$ or $5$", "5"),
    (r"\boxed{12} \boxed{13}", "13"),
]


def gsm8k_pairs(path: Path, n: int) -> list[Pair]:
    """Model-like predictions for the gold answers of the first ``n`` GSM8K problems, labelled by construction."""
    pairs = []
    with path.open(encoding="utf-8") as lines:
        for line in list(lines)[:n]:
            record = json.loads(line)
            gold = gold_answer(record["answer"])
            value = int(gold.replace(",", ""))
            equal = [str(value), f"${value}", f"{value}.00"]
            if abs(value) >= 1000:
                equal.append(f"{value:,}")
            if "$" in record["question"]:
                equal.append(f"{value} dollars")
            wrong = [str(value + 1), f"${value - 1}", f"{value}.5", f"{value * 10:,}"]
            if value != 0:
                wrong.append(str(-value))
            pairs += [Pair(p, gold, True, "gsm8k") for p in equal] + [Pair(p, gold, False, "gsm8k") for p in wrong]
    return pairs


def mv_wrapped(pred: str, gold: str) -> bool:
    return verify(parse(f"${gold}$"), parse(f"${pred}$"))


def mv_raw(pred: str, gold: str) -> bool:
    return verify(parse(gold), parse(pred))


def one_by_one(equal: Callable[[str, str], bool]) -> Callable[[list[Pair]], list[bool]]:
    def run(pairs: list[Pair]) -> list[bool]:
        verdicts = []
        for pair in pairs:
            try:
                verdicts.append(bool(equal(pair.pred, pair.gold)))
            except Exception:  # math-verify catches its own errors; count anything else as "not equal"
                verdicts.append(False)
        return verdicts

    return run


METHODS: dict[str, Callable[[list[Pair]], list[bool]]] = {
    "math_equal": one_by_one(math_equal),
    "math_equal_batch": lambda pairs: math_equal_batch([(p.pred, p.gold) for p in pairs]),
    "math-verify $…$": one_by_one(mv_wrapped),
    "math-verify raw": one_by_one(mv_raw),
}
BASELINE = "math-verify $…$"


def clear_caches() -> None:
    rlhub_math._slow_equal.cache_clear()
    parse_latex_cached.cache_clear()
    parse_expr_cached.cache_clear()


def timed(method: Callable[[list[Pair]], list[bool]], pairs: list[Pair]) -> tuple[list[bool], float]:
    clear_caches()
    start = time.perf_counter()
    verdicts = method(pairs)
    return verdicts, time.perf_counter() - start


def share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k", type=int, default=400, help="GSM8K test problems whose gold answers to use")
    parser.add_argument("--gsm8k-file", type=Path, default=DEFAULT_GSM8K, help="GSM8K test.jsonl")
    parser.add_argument("--repeats", type=int, default=5, help="timings per method; the median is reported")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    console = Console()

    parts = {
        "gsm8k": gsm8k_pairs(args.gsm8k_file, args.gsm8k),
        "latex": [Pair(p, g, eq, "latex") for p, g, eq in LATEX_PAIRS],
        "hedge": [Pair(p, g, False, "hedge") for p, g in HEDGE_PAIRS],
    }
    pairs = [pair for part in parts.values() for pair in part]
    console.print(
        f"{len(pairs)} pairs: " + ", ".join(f"{len(v)} {k}" for k, v in parts.items()) + f"; {args.repeats} repeats"
    )

    # Warm-up, untimed: imports, compiled patterns, rlhub's workers, and sympy's caches in every process.
    for method in METHODS.values():
        method(pairs)
    if not math_equal(r"2\sqrt{2}", r"\sqrt{8}"):
        sys.exit("rlhub's math-verify workers do not answer; see rlhub.rewards.math")

    seconds: dict[str, dict[str, list[float]]] = {m: {k: [] for k in parts} for m in METHODS}
    verdicts: dict[str, dict[str, list[bool]]] = {m: {} for m in METHODS}
    unstable: dict[str, int] = dict.fromkeys(METHODS, 0)
    for _ in range(args.repeats):
        for name, method in METHODS.items():
            for part, part_pairs in parts.items():
                got, elapsed = timed(method, part_pairs)
                seconds[name][part].append(elapsed)
                if part in verdicts[name]:
                    unstable[name] += sum(a != b for a, b in zip(got, verdicts[name][part]))
                else:
                    verdicts[name][part] = got

    flat = {name: [v for part in parts for v in verdicts[name][part]] for name in METHODS}
    labels = [pair.equal for pair in pairs]
    results: dict[str, dict] = {}
    for name in METHODS:
        median = {part: statistics.median(seconds[name][part]) for part in parts}
        total_seconds = sum(median.values())
        accuracy = {
            part: share(sum(v == p.equal for v, p in zip(verdicts[name][part], parts[part])), len(parts[part]))
            for part in parts
        }
        results[name] = {
            "answers_per_s": len(pairs) / total_seconds,
            "answers_per_s_by_part": {part: len(parts[part]) / median[part] for part in parts},
            "seconds_median": median,
            "seconds_all_repeats": seconds[name],
            "accuracy": share(sum(v == label for v, label in zip(flat[name], labels)), len(pairs)),
            "accuracy_by_part": accuracy,
            "false_positives": sum(v and not label for v, label in zip(flat[name], labels)),
            "false_negatives": sum(label and not v for v, label in zip(flat[name], labels)),
            "verdicts_changed_between_repeats": unstable[name],
        }
    names = list(METHODS)
    agreement = {
        f"{a} | {b}": share(sum(x == y for x, y in zip(flat[a], flat[b])), len(pairs))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
    disagreements = [
        {"pred": p.pred, "gold": p.gold, "equal": p.equal, "category": p.category, **{n: flat[n][i] for n in names}}
        for i, p in enumerate(pairs)
        if len({flat[n][i] for n in names}) > 1 or flat["math_equal"][i] != p.equal
    ]

    base = results[BASELINE]

    def rate(r: dict, part: str | None = None) -> str:
        value = r["answers_per_s"] if part is None else r["answers_per_s_by_part"][part]
        reference = base["answers_per_s"] if part is None else base["answers_per_s_by_part"][part]
        return f"{value:,.0f} ({value / reference:.2f}×)"

    table = Table(title="math answer equivalence: speed and accuracy on the same pairs")
    table.add_column("method")
    for column in (f"answers/s (× {BASELINE})", "gsm8k /s", "latex /s", "accuracy", "gsm8k", "latex", "hedge"):
        table.add_column(column, justify="right")
    table.add_column("agrees w/ math_equal", justify="right")
    for name, r in results.items():
        acc = r["accuracy_by_part"]
        agree = share(sum(x == y for x, y in zip(flat[name], flat["math_equal"])), len(pairs))
        table.add_row(
            name,
            rate(r),
            rate(r, "gsm8k"),
            rate(r, "latex"),
            f"{r['accuracy']:.1%}",
            f"{acc['gsm8k']:.1%}",
            f"{acc['latex']:.1%}",
            f"{acc['hedge']:.1%}",
            f"{agree:.1%}",
        )
    console.print(table)

    # Disagreements grouped by verdict pattern (every pair is in the JSON).
    groups: dict[tuple, list[dict]] = {}
    for d in disagreements:
        groups.setdefault((d["category"], d["equal"], *(d[n] for n in names)), []).append(d)
    wrong = Table(title="pairs where the methods disagree or math_equal is wrong, by verdict pattern")
    for column in ("category", "truth", *names, "pairs", "examples (prediction vs gold)"):
        wrong.add_column(column)
    mark = {True: "=", False: "≠"}
    for (category, equal, *marks), members in groups.items():
        examples = "; ".join(f"{d['pred']}  vs  {d['gold']}" for d in members[:3])
        cells = [category, mark[equal], *(mark[m] for m in marks), str(len(members)), examples]
        wrong.add_row(*map(Text, cells))  # Text: LaTeX such as "[1, 3)" is not rich markup
    console.print(wrong)

    if args.json:
        report = {
            "pairs": {part: len(v) for part, v in parts.items()},
            "repeats": args.repeats,
            "methods": results,
            "agreement": agreement,
            "disagreements": disagreements,
            "machine": {
                **machine_info(),
                "python": platform.python_version(),
                "math_verify": importlib.metadata.version("math-verify"),
                "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "rlhub_worker_pool": rlhub_math.POOL_SIZE,
            },
        }
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
