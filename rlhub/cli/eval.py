"""``rlhub eval``: pass@k of a model on environments, a leaderboard row, or a re-score of saved samples."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhub.errors import RLHubError

console = Console()


@click.command("eval")
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
    "--compare",
    nargs=2,
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    metavar="BEFORE AFTER",
    help="Pair two --out folders example by example: pass@1 before and after, the difference and its 95% interval; "
    "given again (one pair per level, say), each pair's rows and then all of them pooled.",
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
    compare,
    leaderboard,
):
    """Score a model, adapter or endpoint on envs' test splits: pass@1, pass@k, rewards, format errors, length.

    \b
    rlhub eval gsm8k-v1 arithmetic-v1 --model runs/my-run/checkpoints/step-000050/adapter --out evals/
    rlhub eval calculator-v1 --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct --k 4
    rlhub eval --rescore evals/
    rlhub eval --compare evals/base evals/trained
    rlhub eval --compare evals/base-level1 evals/trained-level1 --compare evals/base-level2 evals/trained-level2
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
    if compare:
        if env_ids or rescore:
            raise click.UsageError("--compare reads two stored evals: pass the two folders alone")
        _compare(list(compare), as_json)
        return
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


def _compare(pairs: list[tuple[str, str]], as_json: bool) -> None:
    """``rlhub eval --compare``: one row per env, pass@1 before and after with the paired interval (and pooled)."""
    from dataclasses import asdict

    from rlhub.evaluate import compare, compare_pooled

    sections = [(f"{before} -> {after}", compare(before, after)) for before, after in pairs]
    if len(pairs) > 1:
        sections.append((f"pooled over the {len(pairs)} pairs", compare_pooled(pairs)))
    if as_json:
        rows = [{**asdict(r), "excludes_zero": r.excludes_zero} for _, rs in sections for r in rs]
        if len(pairs) > 1:  # which pair each row is from ("pooled over the N pairs" for the last rows)
            names = [name for name, rs in sections for _ in rs]
            rows = [{**row, "pair": name} for row, name in zip(rows, names)]
        click.echo(json.dumps(rows, indent=2))
        return
    for name, rows in sections:
        table = Table(title=f"pass@1: {name} (paired by example)")
        for column in ("env", "examples", "before", "after", "difference [95% interval]", "gained / lost", "McNemar p"):
            table.add_column(column)
        for r in rows:
            p = "-" if r.p_value is None else f"{r.p_value:.3g}"
            interval = f"{r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}]"
            counts = f"{r.gained} / {r.lost}"
            table.add_row(r.env_id, str(r.examples), f"{r.before:.3f}", f"{r.after:.3f}", interval, counts, p)
        console.print(table)
    if any(r.examples < 30 for _, rows in sections[-1:] for r in rows):
        console.print("fewer than 30 examples: the normal interval is rough; evaluate more (-n)", highlight=False)


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
