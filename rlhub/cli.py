"""The ``rlhub`` command line: list, show and validate environments; train, plot and evaluate."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhub.errors import RLHubError

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
    """Every registered environment, then the id families (rg/<task>-v0) made on demand."""
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
        console.print(f"[bold]{namespace}/<task>-v0[/]: {module.FAMILY} ({found})", highlight=False)


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


@main.command("eval")
@click.argument("env_ids", nargs=-1)
@click.option("--model", "model", help="Model name/path or LoRA adapter folder; with --base-url, the served name.")
@click.option("-n", "n", default=64, show_default=True, help="Test examples per env.")
@click.option("--k", "k", default=1, show_default=True, help="Samples per example (pass@k).")
@click.option("--temperature", type=float, default=None, help="Default: 0 (greedy) for k=1, 1.0 for k>1.")
@click.option(
    "--max-new-tokens", default=256, show_default=True, help="Token budget per sample (per episode for tool envs)."
)
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="Env config override.")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True, help="Local sampler.")
@click.option("--base-url", help="An OpenAI-compatible endpoint (vllm serve, a hosted API) to evaluate instead.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, help="Variable holding the endpoint's key.")
@click.option("--concurrency", default=16, show_default=True, help="Endpoint requests in flight at once.")
@click.option(
    "--tool-role",
    type=click.Choice(["tool", "user"]),
    default="tool",
    show_default=True,
    help="Role of tool results sent to the endpoint (user: endpoints that reject tool messages).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Write eval.json (every completion), manifest.json (env, data, model hashes, sampler) and eval.png here.",
)
@click.option(
    "--rescore",
    type=click.Path(file_okay=False, exists=True),
    help="Re-score the completions an --out folder holds with today's envs; exit 1 if any reward changed.",
)
@click.option(
    "--leaderboard",
    is_flag=True,
    help="Measure the embedded model (and --model) on every env, or the ids given, at the leaderboard's sample "
    "sizes; store the numbers in docs/measurements.json and rewrite docs/leaderboard.md, .json and the cards' source.",
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="With --out: write the bar chart eval.png.")
@click.option("--wandb", "use_wandb", is_flag=True, help="Log to W&B (offline without credentials).")
@click.option("--project", default="rlhub", show_default=True, help="W&B project.")
def eval_cmd(
    env_ids,
    model,
    n,
    k,
    temperature,
    max_new_tokens,
    config,
    backend,
    base_url,
    api_key_env,
    concurrency,
    tool_role,
    as_json,
    out,
    plot,
    use_wandb,
    project,
    rescore,
    leaderboard,
):
    """Score a model, adapter or endpoint on envs' test splits: pass@1, pass@k, rewards, format errors, length.

    \b
    rlhub eval gsm8k-v1 arithmetic-v1 --model runs/my-run/checkpoints/step-000050/adapter --out evals/
    rlhub eval calculator-v1 --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --k 4
    rlhub eval --rescore evals/
    rlhub eval --leaderboard
    """
    import os
    from pathlib import Path

    from rlhub.env.registry import get_spec
    from rlhub.evaluate import evaluate_env, load_engine

    if leaderboard:
        if rescore or out:
            raise click.UsageError(
                "--leaderboard writes docs/measurements.json and docs/leaderboard.*: drop --out/--rescore"
            )
        sys.exit(_leaderboard(list(env_ids), model, base_url))
    if rescore:
        if env_ids:
            raise click.UsageError("--rescore re-scores a stored eval: pass the folder alone, without env ids")
        sys.exit(_rescore(rescore, as_json))
    if not env_ids or not model:
        raise click.UsageError("give the env ids and --model (or --rescore DIR)")

    for env_id in env_ids:
        if not _served(env_id):
            get_spec(env_id)  # unknown ids fail fast, before a model loads
    overrides = _parse_env_overrides(config)
    if overrides and any(_served(env_id) for env_id in env_ids):
        raise RLHubError(
            "--config cannot change a served env (http://...): its config is fixed where it is served; "
            "drop --config, or evaluate the env id locally"
        )
    client = engine = None
    if base_url:
        from rlhub.generation.openai import ChatClient

        client = ChatClient(base_url, model, api_key=os.environ.get(api_key_env) or None, tool_role=tool_role)
    else:
        engine = load_engine(model, backend=backend)
    results = []
    for env_id in env_ids:
        env_config = {} if _served(env_id) else {**_trained_env_config(model, env_id), **overrides}
        result = evaluate_env(
            env_id,
            model,
            n=n,
            k=k,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            env_config=env_config,
            progress=not as_json,
            engine=engine,
            client=client,
            concurrency=concurrency,
        )
        results.append((result, env_config))
    chart = sync = None
    if out:
        from rlhub.evaluate import MANIFEST, build_manifest

        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for result, _ in results:
            name = "eval.json" if len(results) == 1 else f"eval-{result.env_id}.json"
            (out_dir / name).write_text(json.dumps(result.to_dict(with_records=True), indent=1))
            files[result.env_id] = name
        sampler = {
            "backend": None if base_url else backend,
            "n": n,
            "k": k,
            "temperature": temperature if temperature is not None else (0.0 if k == 1 else 1.0),
            "top_p": 1.0,
            "max_new_tokens": max_new_tokens,
            "seed": 0,
        }
        manifest = build_manifest(results, files, model=model, sampler=sampler, base_url=base_url)
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if plot:
            from rlhub.plot import plot_eval

            chart = plot_eval([r.to_dict() for r, _ in results], out_dir / "eval.png")
    if use_wandb:
        from rlhub.evaluate import log_to_wandb

        settings = {
            "model": model,
            "envs": list(env_ids),
            "n": n,
            "k": k,
            "temperature": temperature,
            "max_new_tokens": max_new_tokens,
            "base_url": base_url,
            "backend": None if base_url else backend,
        }
        sync = log_to_wandb(
            [r for r, _ in results],
            project=project,
            run_name=f"eval-{_run_label(model)}",
            out_dir=out or ".",
            config=settings,
            chart=chart,
        )
    if as_json:
        payload = [r.to_dict() for r, _ in results]
        click.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
        return
    for result, env_config in results:
        _print_eval(result, model, env_config)
    if chart is not None:
        console.print(f"chart: {chart}", highlight=False)
    if sync:
        console.print(f"W&B ran offline; upload the run later with:\n  {sync}", highlight=False, soft_wrap=True)


def _leaderboard(env_ids: list[str], model: str | None, base_url: str | None) -> int:
    """``rlhub eval --leaderboard``: ``python -m tools.leaderboard measure`` then ``write``, in a clone of rlhub."""
    from pathlib import Path

    if base_url and not model:
        raise click.UsageError("--leaderboard --base-url needs --model: the name the endpoint serves")
    clone = Path.cwd()
    if not (clone / "tools" / "leaderboard" / "__init__.py").is_file():
        raise RLHubError("--leaderboard writes the repository's pages: run it from a clone of rlhub")
    if str(clone) not in sys.path:
        sys.path.insert(0, str(clone))  # the maintainers' tools sit beside the package in a clone; a wheel has none
    from tools.leaderboard.measure import Settings, models_to_measure
    from tools.leaderboard.pages import measure, write_pages

    measure(
        models_to_measure([model] if model else [], base_url=base_url),
        Settings(),
        only=env_ids or None,
        base_url=base_url,
    )
    for path in write_pages():
        click.echo(f"wrote {path}")
    click.echo("the cards read the same numbers: python -m rlhub.authoring.envcard --write docs/envs.md")
    return 0


def _rescore(folder: str, as_json: bool) -> int:
    """``rlhub eval --rescore``: print every stored completion whose reward changed; 1 if any did, else 0."""
    from dataclasses import asdict

    from rlhub.evaluate import rescore

    reports = rescore(folder)
    changed = sum(len(r.changed) for r in reports)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in reports], indent=2))
        return 1 if changed else 0
    for r in reports:
        for note in r.notes:
            console.print(f"{r.env_id}: {note}", highlight=False)
        if not r.changed:
            console.print(f"{r.env_id}: {r.checked} completions re-scored, no reward changed", highlight=False)
            continue
        table = Table(title=f"{r.env_id}: {len(r.changed)} of {r.checked} completions scored differently")
        for column in ("id", "reward then", "reward now", "rewards changed [then, now]"):
            table.add_column(column)
        for c in r.changed:
            table.add_row(c["id"], f"{c['old']}", f"{c['new']}", escape(str(c.get("rewards", c.get("reason")))))
        console.print(table)
    return 1 if changed else 0


def _served(env_id: str) -> bool:
    """Whether ``env_id`` is the URL of a served env (``rlhub serve``) rather than a registered id."""
    return env_id.startswith(("http://", "https://"))


def _parse_env_overrides(items: tuple[str, ...]) -> dict:
    import yaml

    overrides = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RLHubError(f"--config expects KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(raw)
    return overrides


def _trained_env_config(model: str, env_id: str) -> dict:
    """An adapter folder from a run is evaluated with the env config it was trained on (same env only)."""
    from pathlib import Path

    if not (Path(model) / "adapter_config.json").is_file():
        return {}
    run_recipe = Path(model).resolve().parents[2] / "recipe.json"
    if not run_recipe.is_file():
        return {}
    trained_on = json.loads(run_recipe.read_text())["env"]
    return dict(trained_on["config"]) if trained_on["id"] == env_id else {}


def _run_label(model: str) -> str:
    """A W&B run name part: an adapter folder by its checkpoint (``step-000050-adapter``), else the model."""
    from pathlib import Path

    path = Path(model)
    return f"{path.parent.name}-{path.name}" if (path / "adapter_config.json").is_file() else path.name or model


def _print_eval(result, model: str, env_config: dict) -> None:
    table = Table(
        title=f"{result.env_id}: {result.examples} examples x {result.samples_per_example} samples, model {model}"
    )
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


if __name__ == "__main__":
    main()
