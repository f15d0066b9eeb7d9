"""The ``rlhub`` command line: list, show and validate environments; train, plot and evaluate."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from rlhub.errors import RLHubError

console = Console()


class _Group(click.Group):
    """Turns RLHubError into one red line and exit code 1, instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RLHubError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
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
@click.option("--domain", type=click.Choice(["math", "code", "tool"]), help="Only this domain.")
def envs_list(as_json: bool, domain: str | None):
    """Every registered environment."""
    from rlhub.registry import list_envs

    specs = [s for s in list_envs() if domain is None or s.domain == domain]
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in specs], indent=2))
        return
    table = Table(title=f"{len(specs)} environments")
    for col in ("id", "domain", "tags", "description", "source"):
        table.add_column(col, overflow="fold")
    for s in specs:
        table.add_row(s.id, s.domain, ", ".join(s.tags), s.description, s.source)
    console.print(table)


@envs.command("show")
@click.argument("env_id")
def envs_show(env_id: str):
    """One environment: its spec, config fields, rubric and a sample prompt."""
    import dataclasses

    from rlhub.registry import get_spec

    spec = get_spec(env_id)
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
@click.option("--all", "all_envs", is_flag=True, help="Validate every registered environment.")
@click.option("-n", "n", default=16, show_default=True, help="Examples per split to check.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report (for CI).")
def validate(env_ids: tuple[str, ...], all_envs: bool, n: int, as_json: bool):
    """Check that gold answers score 1.0, garbage 0.0, and examples are deterministic."""
    from rlhub.registry import get_spec, list_envs
    from rlhub.validate import validate_env

    if all_envs:
        env_ids = tuple(s.id for s in list_envs())
    if not env_ids:
        raise RLHubError("name an environment (rlhub validate countdown-v0) or pass --all")
    for env_id in env_ids:
        get_spec(env_id)  # unknown ids fail fast, before any work
    reports = [validate_env(env_id, n=n) for env_id in env_ids]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            table = Table(title=f"{report.env_id}: {'[green]passed' if report.passed else '[red]FAILED'}")
            table.add_column("check")
            table.add_column("result")
            table.add_column("detail", overflow="fold")
            for c in report.checks:
                table.add_row(c.name, "[green]ok[/]" if c.passed else "[red]fail[/]", c.detail)
            console.print(table)
    if not all(r.passed for r in reports):
        sys.exit(1)


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


@main.command("eval")
@click.argument("env_id")
@click.option("--model", "model", required=True, help="Model name/path, or a LoRA adapter folder from a run.")
@click.option("-n", "n", default=64, show_default=True, help="Test examples.")
@click.option("--k", "k", default=1, show_default=True, help="Samples per example (pass@k).")
@click.option("--temperature", type=float, default=None, help="Default: 0 (greedy) for k=1, 1.0 for k>1.")
@click.option("--max-new-tokens", default=256, show_default=True)
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="Env config override.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--out", type=click.Path(file_okay=False), help="Also write eval.json (with every completion) here.")
def eval_cmd(env_id, model, n, k, temperature, max_new_tokens, config, as_json, out):
    """Score a model or adapter on an env's test split: pass@1, pass@k, rewards, format errors, length."""
    from pathlib import Path

    import yaml

    from rlhub.evaluate import evaluate_env
    from rlhub.registry import get_spec

    get_spec(env_id)
    env_config = {}
    run_recipe = (
        Path(model).resolve().parents[2] / "recipe.json" if (Path(model) / "adapter_config.json").is_file() else None
    )
    if run_recipe is not None and run_recipe.is_file():
        trained_on = json.loads(run_recipe.read_text())["env"]
        if trained_on["id"] == env_id:
            env_config = dict(trained_on["config"])  # evaluate with the prompt format it was trained on
    for item in config:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RLHubError(f"--config expects KEY=VALUE, got {item!r}")
        env_config[key] = yaml.safe_load(raw)
    result = evaluate_env(
        env_id,
        model,
        n=n,
        k=k,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        env_config=env_config,
        progress=not as_json,
    )
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "eval.json").write_text(json.dumps(result.to_dict(with_records=True), indent=1))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"{env_id}: {result.examples} examples x {k} samples, model {model}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.pass_at_k.items():
        table.add_row(name, f"{value:.3f}")
    table.add_row("mean reward", f"{result.mean_reward:.3f}")
    for name, value in result.rewards.items():
        table.add_row(f"rewards/{name}", f"{value:.3f}")
    if result.format_error_rate is not None:
        table.add_row("format error rate", f"{result.format_error_rate:.3f}")
    table.add_row("mean length (tokens)", f"{result.mean_length:.1f}")
    console.print(table)
    if env_config:
        console.print(f"env config: {env_config}", highlight=False)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="PNG path (default RUN_DIR/reward_curves.png).")
def plot(run_dirs: tuple[str, ...], out: str | None):
    """Plot reward curves (per reward function), completion length and KL of one or more runs."""
    from pathlib import Path

    from rlhub.plot import plot_runs

    target = Path(out) if out else Path(run_dirs[0]) / "reward_curves.png"
    console.print(f"wrote {plot_runs([Path(d) for d in run_dirs], target)}")


if __name__ == "__main__":
    main()
