"""``python -m tools.leaderboard measure | write | record-run`` (run from the clone's root)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from rlhub.authoring.measurements import EMBEDDED, load_measurements
from rlhub.errors import RLHubError
from tools.leaderboard.measure import Settings, models_to_measure
from tools.leaderboard.pages import MEASUREMENTS, measure, record_run, write_pages


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.leaderboard", description="Measure models on the envs; write the leaderboard pages."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure", help="Measure models on the envs and store the numbers (docs/measurements.json).")
    run.add_argument("--model", action="append", help=f"A model to measure besides {EMBEDDED} (repeatable).")
    run.add_argument("--base-url", help="Measure --model through this OpenAI-compatible endpoint instead.")
    run.add_argument("--only", nargs="+", metavar="ID", help="Measure these env ids only (rg/<task>-v0: the family).")
    run.add_argument("--no-embedded", action="store_true", help=f"Measure only the --model ones, not {EMBEDDED}.")
    run.add_argument("--no-trust", action="store_true", help="Skip the rlhub validate probes (model-independent).")
    run.add_argument("--out", help="The JSON file (default: docs/measurements.json).")
    for f in dataclasses.fields(Settings):
        run.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default)
    write = sub.add_parser(
        "write", help="Render docs/leaderboard.{md,json} and README's baseline column from the JSON."
    )
    write.add_argument("--measurements", help="The JSON file (default: docs/measurements.json).")
    record = sub.add_parser("record-run", help="Store a finished training run's rewards for its env card.")
    record.add_argument("run_dir", help="The run's output folder.")
    record.add_argument(
        "--recipe", required=True, help="The recipe the card should name, e.g. recipes/sql-quickstart.yaml."
    )
    record.add_argument("--window", type=int, default=5, help="Steps averaged at each end (default 5).")
    record.add_argument(
        "--heldout",
        nargs=2,
        action="append",
        metavar=("BEFORE", "AFTER"),
        help="`rlhub eval --out` folders of the base model and the run's adapter on the same examples; again for "
        "each level: the card shows held-out pass@1 before and after, pooled and paired by example.",
    )
    record.add_argument("--out", help="The JSON file (default: docs/measurements.json).")
    return parser


def main(argv: list[str] | None = None) -> None:
    cli = parser()
    args = cli.parse_args(argv)
    if args.command == "record-run":
        run = record_run(args.run_dir, args.recipe, window=args.window, out=args.out, heldout=args.heldout)
        print(f"recorded: reward {run.first.reward:.3f} (first {run.window}) -> {run.last.reward:.3f}")
        if run.heldout:
            h = run.heldout
            print(
                f"held-out pass@1 {h['before']:.3f} -> {h['after']:.3f} on {h['examples']} examples, "
                f"{h['difference']:+.3f} [{h['low']:+.3f}, {h['high']:+.3f}]"
            )
    elif args.command == "measure":
        models = models_to_measure(args.model or [], base_url=args.base_url, embedded=not args.no_embedded)
        if not models:
            cli.error("nothing to measure: give --model NAME (or drop --no-embedded)")
        settings = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
        started = time.perf_counter()
        measure(models, settings, only=args.only, base_url=args.base_url, out=args.out, with_trust=not args.no_trust)
        print(f"measured in {time.perf_counter() - started:.0f} s")
    else:
        for path in write_pages(load_measurements(args.measurements or MEASUREMENTS)):
            print(f"wrote {path}")


if __name__ == "__main__":
    try:
        main()
    except RLHubError as exc:  # bad input (a folder that is not a run, evals of another model): one line, exit 1
        sys.exit(f"error: {exc}")
