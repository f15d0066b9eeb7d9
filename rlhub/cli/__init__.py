"""The ``rlhub`` command line: list, show and validate environments; train, plot, serve (``rlhub eval``: ``eval``)."""

from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhub.cli.eval import _served, eval_cmd
from rlhub.errors import RLHubError
from rlhub.hub.cli import hub

# torch's OpenMP runtime on Linux (libgomp) lets a waiting thread spin up to 300,000 iterations before it sleeps.
# Where the cores are shared (a 2-core machine running a sandbox, a reward worker or a second job) those spins take
# the CPU from the work they wait for. Measured on a 2-core AMD EPYC, quickstart steps in float32: idle 26.3 s
# (default) vs 26.5 s (20,000); beside two busy processes 134 s vs 87 s; bit-identical results. libgomp reads it
# when torch is first imported, which none of the imports above does (tests/test_cli.py); a user's value is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

console = Console()


class _Group(click.Group):
    """Turns RLHubError into one red line and exit code 1, instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RLHubError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="rlhub")
def main():
    """rlhub: verifiable RL environments for language models, and trainers for them."""


@main.group(cls=_Group)
def envs():
    """List and inspect registered environments."""


@envs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--domain", type=click.Choice(["math", "code", "tool", "instruction"]), help="Only this domain.")
@click.option("--family", help="List the envs of an id family (rg: reasoning-gym tasks) instead.")
def envs_list(as_json: bool, domain: str | None, family: str | None):
    """Every registered environment, then the id families (rg/<task>-v2) made on demand."""
    from rlhub.env.registry import FAMILIES, list_envs
    from rlhub.env.registry import family as family_module

    if family is not None and family not in FAMILIES:
        raise RLHubError(f"unknown id family {family!r}; families: {', '.join(sorted(FAMILIES))}")
    specs = family_module(family).family_specs() if family else list_envs()
    specs = [s for s in specs if domain is None or s.domain == domain]
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in specs], indent=2))
        return
    table = Table(title=f"{len(specs)} environments")
    for col in ("id", "domain", "tags", "description", "source"):
        table.add_column(col, overflow="fold")
    for s in specs:
        table.add_row(s.id, s.domain, ", ".join(s.tags), s.description, s.source)
    console.print(table)
    for namespace in sorted(FAMILIES) if family is None and domain is None else []:
        module = family_module(namespace)
        try:
            found = f"{len(module.family_specs())} envs: rlhub envs list --family {namespace}"
        except RLHubError:
            found = f"not installed: {module.INSTALL}"
        console.print(f"[bold]{namespace}/<task>-v{module.VERSION}[/]: {module.FAMILY} ({found})", highlight=False)


@envs.command("show")
@click.argument("env_id")
@click.option("--markdown", is_flag=True, help="Print the env card as markdown (as in docs/envs.md).")
def envs_show(env_id: str, markdown: bool):
    """One environment: its spec, config fields, rubric and a sample prompt."""
    import dataclasses

    from rlhub.env.registry import get_spec

    spec = get_spec(env_id)
    if markdown:
        from rlhub.authoring.envcard import env_card

        click.echo(env_card(spec), nl=False)
        return
    env = spec.make()
    console.print(f"[bold]{spec.id}[/]  ({spec.domain}, v{spec.version}, from {spec.source})")
    console.print(spec.description, highlight=False)
    console.print(f"license: {spec.license}   entry point: {spec.entry_point}", highlight=False)
    table = Table(title="config")
    for col in ("key", "value", "default"):
        table.add_column(col)
    for f in dataclasses.fields(env.config):
        default = f.default if f.default is not dataclasses.MISSING else ""
        table.add_row(f.name, repr(getattr(env.config, f.name)), repr(default))
    console.print(table)
    rubric = Table(title="rubric")
    rubric.add_column("reward")
    rubric.add_column("weight")
    for name, w in env.rubric.weights.items():
        rubric.add_row(name, f"{w:g}")
    console.print(rubric)
    try:
        example = env.examples("train", limit=1)[0]
    except RLHubError as exc:
        console.print(f"[yellow]no sample prompt:[/] {exc}", highlight=False)
        return
    for message in example.prompt:
        console.print(f"[bold]{message['role']}:[/] {message['content']}", highlight=False)
    console.print(f"[bold]gold:[/] {example.answer}", highlight=False)


@main.command()
@click.argument("env_ids", nargs=-1)
@click.option(
    "--all",
    "all_envs",
    is_flag=True,
    help="Validate every registered environment; those whose data is not on this machine are listed, not failed.",
)
@click.option("-n", "n", default=16, show_default=True, help="Examples per split to check (and to audit).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report (for CI).")
@click.option(
    "--audit",
    is_flag=True,
    help="Also audit the verifier: false-negative and false-positive rates, slowest scoring, scripted policies.",
)
@click.option("--record", is_flag=True, help="With --audit: store the audits in docs/audit.json for the env cards.")
def validate(env_ids: tuple[str, ...], all_envs: bool, n: int, as_json: bool, audit: bool, record: bool):
    """Check that gold answers score 1.0, garbage 0.0, examples are deterministic, and reward hacks earn nothing.

    With --audit, also measure how often the verifier rejects rewrites of the gold that a careful grader
    accepts (FN%) and accepts near misses (FP%), its slowest scoring time, and the mean correctness of an
    oracle, a random and a heuristic policy; an env fails above its bounds (default FN 2%, FP 1%, 5 s).
    """
    from rlhub.authoring.validate import validate_env
    from rlhub.env.registry import get_spec, list_envs

    if record and not audit:
        raise RLHubError("--record stores audits: add --audit")
    if all_envs:
        env_ids = tuple(s.id for s in list_envs())
    if not env_ids:
        raise RLHubError("name an environment (rlhub validate countdown-v0) or pass --all")
    for env_id in env_ids:
        if not _served(env_id):
            get_spec(env_id)  # unknown ids fail fast, before any work
    reports = [validate_env(env_id, n=n) for env_id in env_ids]
    audits = _audit(env_ids, n, record) if audit else []
    if as_json:
        out = [r.to_dict() for r in reports]
        for entry, audited in zip(out, audits):
            entry["audit"] = audited.to_dict()
        click.echo(json.dumps(out, indent=2))
    else:
        for report in reports:
            table = Table(title=f"{report.env_id}: {'[green]passed' if report.passed else '[red]FAILED'}")
            for column in ("check", "rule", "max score", "result"):
                table.add_column(column)
            table.add_column("detail", overflow="fold")
            kinds = [c.kind for c in report.checks]
            for i, c in enumerate(report.checks):
                scored = "" if c.max_total is None else f"correct {c.max_correct:g}, total {c.max_total:g}"
                result = "[green]ok[/]" if c.passed else "[red]fail[/]"
                last_check = kinds[i : i + 2] == ["check", "probe"]  # a line between the checks and the probes
                table.add_row(c.name, c.rule, scored, result, c.detail, end_section=last_check)
            console.print(table)
        if audits:
            _print_audits(audits)
    # With --all, an env whose data is absent here (math-v1, mbpp-v0 offline) is reported, not failed: the
    # user did not ask for it by name. Named envs must validate.
    missing = [r.env_id for r in reports if r.no_data] if all_envs else []
    if missing and not as_json:
        names = ", ".join(missing)
        console.print(f"[yellow]not validated, no data on this machine:[/] {names} (pass path= or set RLHUB_DATA)")
    checked = [r for r in [*reports, *audits] if r.env_id not in missing]
    if not all(r.passed for r in checked):
        sys.exit(1)


def _audit(env_ids: tuple[str, ...], n: int, record: bool) -> list:
    """Audit each env's verifier (and store the audits when ``record``)."""
    from rlhub.authoring.audit import audit_env
    from rlhub.authoring.audit import record as record_audits

    audits = [audit_env(env_id, n=n) for env_id in env_ids]
    if record:
        click.echo(f"recorded the audits in {record_audits(audits)}", err=True)  # stdout may be --json
    return audits


def _print_audits(audits: list) -> None:
    """One row per env: FN% and FP% with counts, the slowest scoring, the ladder's means; then each broken bound."""
    table = Table(title="verifier audit (mean correctness of the oracle / random / heuristic policies)")
    table.add_column("env", no_wrap=True)
    for column in ("FN% (k/n)", "FP% (k/n)", "slowest s", "oracle / random / heuristic", "result"):
        table.add_column(column)
    for a in audits:
        ladder = " / ".join(f"{a.ladder[p]:.2f}" for p in ("oracle", "random", "heuristic") if p in a.ladder)
        result = "[yellow]no data[/]" if a.no_data else "[green]ok[/]" if a.passed else "[red]fail[/]"
        table.add_row(a.env_id, a.fn.text(), a.fp.text(), f"{a.slowest_s:.2f}", ladder or "n/a", result)
    console.print(table)
    for a in audits:
        for problem in a.problems:
            console.print(f"[red]{escape(problem)}[/]", highlight=False, soft_wrap=True)


@main.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value.")
@click.option("--resume", is_flag=True, help="Continue the run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write reward_curves.png at the end.")
@click.option(
    "--nproc",
    default=1,
    show_default=True,
    help="Processes on this machine (torchrun); GPUs: use accelerate launch.",
)
def train(recipe_path: str, overrides: tuple[str, ...], resume: bool, overwrite: bool, plot: bool, nproc: int):
    """Train with a recipe: rlhub train recipes/quickstart.yaml --set training.max_steps=20"""
    import os
    from pathlib import Path

    from rlhub.trainers.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)  # fails fast, before torch is imported
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        import subprocess

        args, skip_next = [], False
        for arg in sys.argv[1:]:
            if skip_next or arg.startswith("--nproc="):
                skip_next = False
                continue
            skip_next = arg == "--nproc"
            if not skip_next:
                args.append(arg)
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "rlhub",
            *args,
        ]
        sys.exit(subprocess.call(cmd))
    from rlhub.trainers.loop import train as run_training

    result = run_training(recipe, recipe_name=Path(recipe_path).stem, resume=resume, overwrite=overwrite)
    if not result.is_main_process:
        return
    if plot:
        from rlhub.plot import plot_runs

        result.summary["plot"] = str(plot_runs([result.run_dir], result.run_dir / "reward_curves.png"))
    _print_summary(result)


def _print_summary(result) -> None:
    s = result.summary
    table = Table(title=f"run finished: {result.run_dir}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("steps", str(s["steps"]))
    table.add_row("wall time", f"{s['wall_time_s']:.0f} s")
    table.add_row(f"reward, first {s['window']} steps", f"{s['reward_first']:.3f}")
    table.add_row(f"reward, last {s['window']} steps", f"{s['reward_last']:.3f}")
    for key, v in s.get("eval", {}).items():
        table.add_row(f"{key}, before -> after", f"{v['before']:.3f} -> {v['after']:.3f} ({v['gain']:+.3f})")
    table.add_row("checkpoint", s["checkpoint"])
    if "plot" in s:
        table.add_row("reward curves", s["plot"])
    console.print(table)
    if "wandb_sync" in s:
        console.print(
            f"W&B ran offline; upload the run later with:\n  {s['wandb_sync']}", highlight=False, soft_wrap=True
        )


@main.command("check-tokens")
@click.argument("env_id")
@click.option("--model", required=True, help="Embedded model name, checkpoint folder or hub id (its tokenizer only).")
def check_tokens(env_id: str, model: str):
    """Check that multi-turn training keeps exactly the sampled tokens under MODEL's chat template."""
    from rlhub.generation.fidelity import main as run_check

    sys.exit(run_check(env_id, model))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="PNG path (default RUN_DIR/reward_curves.png).")
def plot(run_dirs: tuple[str, ...], out: str | None):
    """Plot reward curves (per reward function), completion length and KL of one or more runs."""
    from pathlib import Path

    from rlhub.plot import plot_runs

    target = Path(out) if out else Path(run_dirs[0]) / "reward_curves.png"
    console.print(f"wrote {plot_runs([Path(d) for d in run_dirs], target)}")


@main.command("new-env")
@click.argument("name")
@click.option("--domain", required=True, type=click.Choice(["math", "code", "tool"]), help="Which toy to start from.")
@click.option("--multi-turn", is_flag=True, help="Start from a multi-turn toy whose model calls tools.")
@click.option(
    "--package",
    type=click.Path(file_okay=False),
    help="Write a standalone pip-installable env package into this new folder, instead of into this checkout.",
)
@click.option("--description", help="The registry's one-line description (default: the toy's).")
def new_env(name: str, domain: str, multi_turn: bool, package: str | None, description: str | None):
    """Scaffold a working environment: rlhub new-env word-count --domain math"""
    from pathlib import Path

    from rlhub.authoring.scaffold import new_env as scaffold
    from rlhub.env.registry import default_registry_path

    env_id, written = scaffold(name, domain, multi_turn, package=package, description=description)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    if package:
        steps = f"pip install -e {package} && rlhub validate {env_id} && python -m pytest {package}/tests"
        console.print(f"next: {steps}", highlight=False, soft_wrap=True)
        return
    steps = f"rlhub validate {env_id} && python -m pytest -q {written[1]}"
    console.print(f"next: {steps}", highlight=False, soft_wrap=True)
    if default_registry_path().resolve() != Path("registry.yaml").resolve():
        console.print(
            f"[yellow]note:[/] the installed rlhub reads {default_registry_path()}; run `pip install -e .` here "
            f"so that it sees {env_id}",
            highlight=False,
            soft_wrap=True,
        )


@envs.command("build")
@click.argument("env_id")
def envs_build(env_id: str):
    """Build a local Docker image that serves one environment (rlhub serve ENV_ID --docker runs it)."""
    from rlhub.serve.container import build

    console.print(build(env_id), highlight=False)


main.add_command(eval_cmd)
main.add_command(hub)
main.add_command(envs, name="env")  # `rlhub env build ENV_ID` reads as well as `rlhub envs build`


@main.command()
@click.argument("env_id")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; not loopback needs --token.")
@click.option("--port", default=8700, show_default=True, help="Port to bind.")
@click.option("--token", envvar="RLHUB_ENV_TOKEN", help="Bearer token clients must send [env: RLHUB_ENV_TOKEN].")
@click.option("--session-ttl", default=600.0, show_default=True, help="Seconds before an idle episode is dropped.")
@click.option("--docker", is_flag=True, help="Serve from the env's container (built first if needed) on 127.0.0.1.")
def serve(env_id: str, host: str, port: int, token: str | None, session_ttl: float, docker: bool):
    """Serve one environment over HTTP (protocol: docs/serve.md); use it with rlhub.make("http://HOST:PORT/ENV_ID")."""
    if docker:
        import time

        from rlhub.serve.container import running

        if host != "127.0.0.1":
            raise RLHubError("--docker serves on 127.0.0.1 only; leave out --host")
        with running(env_id, port=port, token=token) as url:
            console.print(f"serving {env_id} from a container at {url} (Ctrl-C stops it)", highlight=False)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
    from rlhub.serve.server import serve as run_server

    console.print(f"serving {env_id} at http://{host}:{port}/{env_id}", highlight=False, soft_wrap=True)
    run_server(env_id, host=host, port=port, token=token, session_ttl=session_ttl)
