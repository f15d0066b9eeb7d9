"""``rlhub eval``: score a model, a trained LoRA adapter or an OpenAI-compatible endpoint on an env's test split.

Reports pass@1 and pass@k (the unbiased estimator of Chen et al. 2021), the mean of each reward
function, the format-error rate and the mean completion length. A sample "passes" when the env's
first reward function (its correctness reward, by convention) scores 1.0.

Local models sample through the same ``rollout()`` as training (``hf`` engine, or ``vllm`` on a GPU);
endpoints through :mod:`rlhub.generation.openai`. Results can go to W&B (:func:`log_to_wandb`) and to a
bar chart (:func:`rlhub.plot.plot_eval`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlhub.errors import RLHubError
from rlhub.generation import Sampling
from rlhub.wandb_mode import offline_unless_credentials


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples, drawn from n of which c pass, passes.

    >>> pass_at_k(n=4, c=1, k=1), pass_at_k(n=4, c=1, k=4), pass_at_k(n=4, c=0, k=2)
    (0.25, 1.0, 0.0)
    """
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class EvalResult:
    env_id: str
    model: str
    examples: int
    samples_per_example: int
    pass_at_1: float
    pass_at_k: dict[str, float]
    rewards: dict[str, float]
    mean_reward: float
    format_error_rate: float | None
    mean_length: float
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self, with_records: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_records:
            d.pop("records")
        return d


def load_for_eval(model: str, dtype: str = "float32"):
    """A model name/path, or a PEFT adapter folder (its base model is read from adapter_config.json)."""
    from rlhub.models import load_model_and_tokenizer

    path = Path(model)
    config = path / "adapter_config.json"
    if config.is_file():
        from peft import PeftModel

        base_name = json.loads(config.read_text()).get("base_model_name_or_path")
        if not base_name:
            raise RLHubError(f"{config} names no base_model_name_or_path; cannot rebuild the model it adapts")
        base, tokenizer = load_model_and_tokenizer(base_name, dtype=dtype, device="cpu")
        return PeftModel.from_pretrained(base, path), tokenizer
    return load_model_and_tokenizer(model, dtype=dtype, device="cpu")


def load_engine(model: str, backend: str = "hf", seed: int = 0):
    """A rollout engine over a local checkpoint or adapter folder: ``hf`` (CPU or GPU) or ``vllm`` (GPU)."""
    if backend == "vllm":
        from rlhub.generation.vllm import VLLMEngine

        return VLLMEngine.for_eval(model, seed=seed)
    if backend != "hf":
        raise RLHubError(f"unknown backend {backend!r}; use hf or vllm (or --base-url for an endpoint)")
    import torch

    from rlhub.generation import make_engine

    policy, tokenizer = load_for_eval(model)
    return make_engine({"backend": "hf"}, policy, tokenizer, torch.Generator().manual_seed(seed))


def evaluate_env(
    env_id: str,
    model: str,
    *,
    n: int = 64,
    k: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    seed: int = 0,
    env_config: dict[str, Any] | None = None,
    progress: bool = True,
    engine=None,
    client=None,
    concurrency: int = 16,
) -> EvalResult:
    """Evaluate ``model`` on ``n`` test examples of ``env_id`` with ``k`` samples each.

    Args:
        env_id: A registered env.
        model: A model name/path or adapter folder (loaded with the ``hf`` engine unless ``engine`` is
            given), or the served model name when ``client`` is given.
        temperature: Default 0 (greedy) for k=1 and 1.0 for k>1.
        engine: A rollout engine to sample with (``load_engine``), reused across envs.
        client: A :class:`rlhub.generation.openai.ChatClient`: sample through an OpenAI-compatible endpoint.
        concurrency: Requests in flight at once with ``client``.
    """
    from tqdm.auto import tqdm

    import rlhub

    env = rlhub.make(env_id, **(env_config or {}))
    examples = env.examples("test", limit=n, seed=seed)
    if not examples:
        raise RLHubError(f"{env_id} has no test examples")
    if temperature is None:
        temperature = 0.0 if k == 1 else 1.0
    if k > 1 and temperature == 0:
        raise RLHubError("k > 1 samples per example need temperature > 0 (greedy samples are all the same)")
    if client is None and engine is None:
        engine = load_engine(model, seed=seed)
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    bar = tqdm(total=len(examples) * k, desc=f"eval {env_id}", unit="sample", disable=not progress)
    try:
        if client is not None:
            from rlhub.generation.openai import run_chat

            samples = run_chat(
                client, env, examples, k, sampling, concurrency=concurrency, on_sample=lambda _: bar.update(1)
            )
        else:
            samples = _sample_locally(engine, env, examples, k, sampling, batch_size, bar)
    finally:
        bar.close()
    rows = [examples[s.prompt_index] for s in samples]
    scores = env.score_batch([s.output for s in samples], rows)
    return summarize(env, env_id, model, len(examples), k, samples, rows, scores)


def _sample_locally(engine, env, examples, k, sampling: Sampling, batch_size, bar) -> list:
    from rlhub.generation.rollout import encode_prompt, rollout

    samples = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        ids = [encode_prompt(engine.tokenizer, env, ex) for ex in chunk]
        for c in rollout(engine, env, chunk, ids, k, sampling):
            c.prompt_index += start
            samples.append(c)
        bar.update(len(chunk) * k)
    return samples


def _length(sample) -> int | None:
    """Tokens the model generated: counted locally, or as the endpoint reports them."""
    if hasattr(sample, "completion_tokens"):
        return sample.completion_tokens
    return sum(sample.loss_mask)


def summarize(env, env_id: str, model: str, examples: int, k: int, samples, rows, scores) -> EvalResult:
    """pass@1 and pass@k over examples, each reward's mean, format-error rate and mean length."""
    first = env.rubric.names[0]
    multi_turn = env.multi_turn
    records: list[dict[str, Any]] = []
    for sample, example, score in zip(samples, rows, scores):
        record = {
            "id": example.id,
            "completion": sample.text,
            "reward": score.reward,
            "rewards": score.rewards,
            "length": _length(sample),
            "passed": (score.rewards.get(first) or 0.0) >= 1.0,
        }
        if multi_turn:
            record["transcript"] = sample.output
        records.append(record)
    by_example: dict[str, list[bool]] = {}
    for r in records:
        by_example.setdefault(r["id"], []).append(r["passed"])
    ks = sorted({1, k})
    pass_k = {
        f"pass@{kk}": sum(pass_at_k(len(v), sum(v), kk) for v in by_example.values()) / len(by_example) for kk in ks
    }
    names = env.rubric.names
    means = {name: mean([r["rewards"][name] for r in records]) for name in names}
    format_errors = (
        mean([1.0 if (r["rewards"]["format"] or 0) == 0 else 0.0 for r in records]) if "format" in names else None
    )
    return EvalResult(
        env_id=env_id,
        model=model,
        examples=examples,
        samples_per_example=k,
        pass_at_1=pass_k["pass@1"],
        pass_at_k=pass_k,
        rewards=means,
        mean_reward=mean([r["reward"] for r in records]),
        format_error_rate=format_errors,
        mean_length=mean([r["length"] for r in records]),
        records=records,
    )


def mean(values, empty: float | None = 0.0) -> float | None:
    """The mean of the values that are not None; ``empty`` when there are none.

    The trainer's metrics and eval scores use the default 0.0; the benchmarks pass ``empty=None``, so that a
    figure nothing measured is written as missing rather than as a measured zero.

    >>> mean([1.0, None, 2.0]), mean([None]), mean([], empty=None)
    (1.5, 0.0, None)
    """
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else empty


# --- W&B ----------------------------------------------------------------------------------------------
def summary_metrics(results: list[EvalResult]) -> dict[str, float]:
    """Flat, namespaced metrics of one or more env results: ``eval/<env>/pass@1``, ``eval/<env>/rewards/<fn>``.

    >>> r = EvalResult("a-v0", "m", 2, 1, 0.5, {"pass@1": 0.5}, {"correct": 0.5}, 0.55, None, 7.0)
    >>> summary_metrics([r])["eval/a-v0/pass@1"], summary_metrics([r])["eval/a-v0/rewards/correct"]
    (0.5, 0.5)
    """
    out: dict[str, float] = {}
    for r in results:
        prefix = f"eval/{r.env_id}"
        out.update({f"{prefix}/{name}": value for name, value in r.pass_at_k.items()})
        out.update({f"{prefix}/rewards/{name}": value for name, value in r.rewards.items()})
        out[f"{prefix}/mean_reward"] = r.mean_reward
        out[f"{prefix}/mean_length"] = r.mean_length
        if r.format_error_rate is not None:
            out[f"{prefix}/format_error_rate"] = r.format_error_rate
    return out


def log_to_wandb(
    results: list[EvalResult],
    *,
    project: str,
    run_name: str,
    out_dir: str | Path,
    config: dict[str, Any] | None = None,
    chart: str | Path | None = None,
) -> str | None:
    """One W&B run: the summary metrics, a ``completions`` table (every sample) and the chart.

    Without credentials (``WANDB_API_KEY`` or a ``~/.netrc`` entry) the run is written offline under
    ``out_dir``, as training runs are.

    Returns:
        The ``wandb sync`` command for an offline run, else None.
    """
    offline = offline_unless_credentials()
    try:
        import wandb
    except ImportError:
        raise RLHubError("--wandb needs the wandb package: pip install wandb") from None
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project,
        name=run_name,
        job_type="eval",
        dir=str(out_dir),
        config=config or {},
        settings=wandb.Settings(silent=True, console="off"),
    )

    names = sorted({name for r in results for name in r.rewards})
    columns = ["env", "id", "completion", "reward", "passed", "length", *(f"rewards/{n}" for n in names)]
    table = wandb.Table(columns=columns)
    for r in results:
        for rec in r.records:
            extra = [rec["rewards"].get(n) for n in names]
            table.add_data(r.env_id, rec["id"], rec["completion"], rec["reward"], rec["passed"], rec["length"], *extra)
    payload: dict[str, Any] = {**summary_metrics(results), "completions": table}
    if chart is not None:
        payload["chart"] = wandb.Image(str(chart))
    run.log(payload)
    run.summary.update(summary_metrics(results))
    run_dir = Path(run.dir).parent
    run.finish()
    return f"wandb sync {run_dir}" if offline else None


# --- reproducible evals: a manifest beside the completions, and re-scoring them ---------------------------
MANIFEST = "manifest.json"
"""The file ``rlhub eval --out`` writes beside the completions (``eval.json`` / ``eval-<env>.json``)."""

_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja", ".gguf")
"""Files of a model or adapter folder that go into its hash (weights, configs, tokenizer)."""


def _sha256(parts) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _file_chunks(files: list[Path]):
    for file in files:
        yield file.name
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk


def folder_hash(folder: str | Path) -> str:
    """sha256 (16 hex digits) over a model or adapter folder's weight, config and tokenizer files.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> folder_hash(d) == folder_hash(d), len(folder_hash(d))
    (True, 16)
    """
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(_HASHED_SUFFIXES))
    return _sha256(_file_chunks(files))


def rewards_hash() -> str:
    """sha256 over the sources of the ``rlhub.rewards`` package (an env's module hash does not cover them)."""
    import rlhub.rewards

    return _sha256(_file_chunks(sorted(Path(rlhub.rewards.__file__).parent.glob("*.py"))))


def _training_only(env_id: str, *entries: dict) -> set[str]:
    """Config fields that do not change what an eval measures (``EnvConfig.training_only``): those the evals
    recorded, and a built-in env's own (evals written before they were recorded). A package's env class is not
    loaded here: untrusted code runs only in its sandbox."""
    from rlhub.env.registry import get_spec

    keys = {key for entry in entries for key in entry.get("training_only", ())}
    try:
        spec = get_spec(env_id)
        if spec.source == "rlhub":
            keys |= set(getattr(spec.load_class().Config, "training_only", ()))
    except Exception:  # an env no longer registered: only what the evals recorded
        pass
    return keys


def data_hash(examples) -> str:
    """sha256 over the examples' ids, prompts, answers and info: the exact data an eval ran on."""
    rows = [[ex.id, ex.prompt, ex.answer, ex.info] for ex in examples]
    return _sha256([json.dumps(rows, sort_keys=True, default=str)])


def model_fingerprint(model: str, base_url: str | None = None) -> dict[str, Any]:
    """What was evaluated: the model (and adapter) with the hash of their files, or the endpoint's model."""
    if base_url:
        return {"name": model, "endpoint": base_url, "hash": None}
    from rlhub.models import resolve_model_path

    path = Path(model)
    config = path / "adapter_config.json"
    if config.is_file():
        base = json.loads(config.read_text()).get("base_model_name_or_path") or ""
        base_path = Path(resolve_model_path(base)) if base else None
        return {
            "name": model,
            "adapter_hash": folder_hash(path),
            "base": base,
            "hash": folder_hash(base_path) if base_path and base_path.is_dir() else None,
        }
    local = Path(resolve_model_path(model))
    return {"name": model, "hash": folder_hash(local) if local.is_dir() else None}


def build_manifest(
    results: list[tuple[EvalResult, dict[str, Any]]],
    files: dict[str, str],
    *,
    model: str,
    sampler: dict[str, Any],
    base_url: str | None = None,
) -> dict[str, Any]:
    """The manifest of one ``rlhub eval --out`` run: enough to re-create its data and re-score its completions.

    Args:
        results: Each env's result with the env config it ran with.
        files: Each env id's completions file, relative to the manifest.
        model: The ``--model`` value.
        sampler: Sampling settings (``n``, ``k``, ``temperature``, ``top_p``, ``max_new_tokens``, ``seed``, ...).
        base_url: The endpoint, when one was evaluated.
    """
    import datetime

    import rlhub

    envs = []
    for result, env_config in results:
        env = rlhub.make(result.env_id, **env_config)
        examples = env.examples("test", limit=sampler["n"], seed=sampler["seed"])
        envs.append(
            {
                "env_id": result.env_id,
                **_code_identity(result.env_id),
                "config": env_config,
                "training_only": sorted(set(getattr(env.config, "training_only", ())) & set(env_config)),
                "data_hash": data_hash(examples),
                "examples": result.examples,
                "file": files[result.env_id],
            }
        )
    return {
        "rlhub_version": rlhub.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model_fingerprint(model, base_url),
        "sampler": sampler,
        "envs": envs,
    }


def _code_identity(env_id: str) -> dict[str, Any]:
    """What a manifest records of an env's code: version, source and hashes. A served env's code is on its
    server, out of sight: those are None, and only its data hash tells whether it changed."""
    if env_id.startswith(("http://", "https://")):
        return {"version": None, "source": env_id, "code_hash": None, "rewards_hash": None}
    from rlhub.env.registry import get_spec

    spec = get_spec(env_id)
    return {
        "version": spec.version,
        "source": spec.source,
        "code_hash": spec.code_hash(),
        "rewards_hash": rewards_hash(),
    }


@dataclass
class Rescore:
    """One env's stored completions scored again with the current env."""

    env_id: str
    checked: int
    changed: list[dict[str, Any]]
    """One entry per completion whose total or any single reward changed: id, old and new rewards."""
    notes: list[str]
    """What differs from the manifest (version, code, rewards or data hash), whether or not rewards changed."""


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 1e-9


def rescore(out_dir: str | Path) -> list[Rescore]:
    """Score the completions an ``rlhub eval --out`` run stored with today's envs, and list what changed.

    Args:
        out_dir: The folder holding ``manifest.json`` and the completions files.

    Returns:
        One :class:`Rescore` per env of the run.

    Raises:
        RLHubError: The folder has no manifest (it was written before manifests, or is not an eval folder).
    """
    import rlhub

    folder = Path(out_dir)
    path = folder / MANIFEST
    if not path.is_file():
        raise RLHubError(f"{path} not found; re-run `rlhub eval ... --out {folder}` to write one")
    manifest = json.loads(path.read_text())
    sampler = manifest["sampler"]
    reports = []
    for entry in manifest["envs"]:
        env_id = entry["env_id"]
        env = rlhub.make(env_id, **entry["config"])
        examples = env.examples("test", limit=sampler["n"], seed=sampler["seed"])
        identity = _code_identity(env_id)
        now = {key: identity[key] for key in ("version", "code_hash", "rewards_hash")}
        now["data_hash"] = data_hash(examples)
        notes = [f"{key} {entry[key]} -> {value}" for key, value in now.items() if entry.get(key) != value]
        by_id = {ex.id: ex for ex in examples}
        records = json.loads((folder / entry["file"]).read_text())["records"]
        known = [r for r in records if r["id"] in by_id]
        changed = [
            {"id": r["id"], "old": r["reward"], "new": None, "reason": "example gone"}
            for r in records
            if r["id"] not in by_id
        ]
        outputs = [r.get("transcript", r["completion"]) for r in known]
        scores = env.score_batch(outputs, [by_id[r["id"]] for r in known]) if known else []
        for record, score in zip(known, scores):
            names = set(record["rewards"]) | set(score.rewards)
            moved = {
                n: [record["rewards"].get(n), score.rewards.get(n)]
                for n in sorted(names)
                if not _same(record["rewards"].get(n), score.rewards.get(n))
            }
            if moved or not _same(record["reward"], score.reward):
                changed.append({"id": record["id"], "old": record["reward"], "new": score.reward, "rewards": moved})
        reports.append(Rescore(env_id, len(records), changed, notes))
    return reports


# --- before/after: the paired difference of two evals ---------------------------------------------------
Z_95 = 1.959963984540054
"""The normal distribution's 97.5% quantile: the interval is mean +- Z_95 standard errors (n >= 30 asked)."""


@dataclass
class Comparison:
    """pass@1 of one env before and after (two ``rlhub eval --out`` folders on the same examples), paired by example.

    The interval is the normal approximation to the mean of the per-example differences (each example's pass@1
    after minus before), which pairs the two evals: an example both pass or both fail adds no variance. ``gained``
    and ``lost`` count the examples whose pass@1 rose or fell; with one greedy sample each (k = 1) ``p_value`` is
    the exact two-sided McNemar test of gained against lost.
    """

    env_id: str
    examples: int
    before: float
    after: float
    difference: float
    low: float
    high: float
    gained: int
    lost: int
    p_value: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def mcnemar_p(gained: int, lost: int) -> float:
    """The exact two-sided McNemar p-value: the binomial test of ``gained`` of ``gained + lost`` against one half.

    >>> round(mcnemar_p(10, 0), 5), mcnemar_p(3, 3)
    (0.00195, 1.0)
    """
    n = gained + lost
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _eval_folder(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    path = folder / MANIFEST
    if not path.is_file():
        raise RLHubError(f"{path} not found; compare folders written by `rlhub eval ... --out DIR`")
    manifest = json.loads(path.read_text())
    return manifest, {entry["env_id"]: entry for entry in manifest["envs"]}


def _per_example(folder: Path, entry: dict[str, Any]) -> dict[str, float]:
    by_id: dict[str, list[bool]] = {}
    for record in json.loads((folder / entry["file"]).read_text())["records"]:
        by_id.setdefault(record["id"], []).append(bool(record["passed"]))
    return {example: sum(passed) / len(passed) for example, passed in by_id.items()}


def compare(before_dir: str | Path, after_dir: str | Path) -> list[Comparison]:
    """Pair two ``rlhub eval --out`` folders example by example (e.g. the base model, then the trained adapter).

    Args:
        before_dir: The first eval's folder.
        after_dir: The second's; it must hold the same envs, with the same examples (data hash) and sampler.

    Returns:
        One :class:`Comparison` per env of the first folder.

    Raises:
        RLHubError: A folder is not an eval folder, or the two evals did not run on the same examples.
    """
    sampler, pairs = _checked_pair(Path(before_dir), Path(after_dir))
    return [_paired(env_id, a, b, sampler.get("k", 1)) for env_id, (a, b) in pairs.items()]


def _checked_pair(
    before_dir: Path, after_dir: Path
) -> tuple[dict[str, Any], dict[str, tuple[dict[str, float], dict[str, float]]]]:
    """The sampler of two evals on the same examples and, per env, pass@1 by example id before and after.

    Raises:
        RLHubError: As :func:`compare`.
    """
    before_dir, after_dir = Path(before_dir), Path(after_dir)
    (first, before_envs), (second, after_envs) = _eval_folder(before_dir), _eval_folder(after_dir)
    for key in ("n", "k", "temperature", "max_new_tokens", "seed"):
        if first["sampler"].get(key) != second["sampler"].get(key):
            raise RLHubError(
                f"the evals sampled differently ({key}: {first['sampler'].get(key)} in {before_dir}, "
                f"{second['sampler'].get(key)} in {after_dir}); run both with the same -n, --k, --temperature and "
                "--max-new-tokens"
            )
    out = {}
    for env_id, entry in before_envs.items():
        other = after_envs.get(env_id)
        if other is None:
            raise RLHubError(f"{after_dir} has no eval of {env_id}; run `rlhub eval {env_id} ... --out {after_dir}`")
        ignored = _training_only(env_id, entry, other)
        scored, other_scored = ({k: v for k, v in e["config"].items() if k not in ignored} for e in (entry, other))
        if (entry["data_hash"], scored) != (other["data_hash"], other_scored):
            raise RLHubError(
                f"{env_id}: the evals ran on different examples (data hash {entry['data_hash']} vs "
                f"{other['data_hash']}, config {entry['config']} vs {other['config']}); pass the same --config to both"
            )
        a, b = _per_example(before_dir, entry), _per_example(after_dir, other)
        if a.keys() != b.keys():
            raise RLHubError(f"{env_id}: the two evals scored different example ids; re-run both with the same -n")
        out[env_id] = (a, b)
    return first["sampler"], out


def _paired(env_id: str, before: dict[str, float], after: dict[str, float], k: int) -> Comparison:
    """The paired statistics of per-example pass@1 before and after (the same example ids in both)."""
    diffs = [after[example] - before[example] for example in before]
    n = len(diffs)
    mean_diff = sum(diffs) / n
    sd = math.sqrt(sum((d - mean_diff) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("inf")
    half = Z_95 * sd / math.sqrt(n)
    gained, lost = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return Comparison(
        env_id=env_id,
        examples=n,
        before=sum(before.values()) / n,
        after=sum(after.values()) / n,
        difference=mean_diff,
        low=mean_diff - half,
        high=mean_diff + half,
        gained=gained,
        lost=lost,
        p_value=mcnemar_p(gained, lost) if k == 1 else None,
    )


def compare_pooled(pairs: list[tuple[str | Path, str | Path]]) -> list[Comparison]:
    """Pool several before/after eval pairs into one paired comparison per env (e.g. one pair per difficulty level).

    Each pair is checked as :func:`compare` checks it; the examples of all pairs are then paired as one sample, so
    the interval is that of the mean difference over every example (an example counts once per pair it is in).

    Args:
        pairs: ``(before_dir, after_dir)`` folders, each pair on the same examples; the pairs may differ in config.

    Returns:
        One :class:`Comparison` per env, over the examples of every pair that evaluated it.

    Raises:
        RLHubError: As :func:`compare`, or the pairs sampled differently (greedy in one, k = 4 in another; other
            token budgets).
    """
    pooled: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    samplers = set()
    for i, (before_dir, after_dir) in enumerate(pairs):
        sampler, by_env = _checked_pair(Path(before_dir), Path(after_dir))  # same examples, same sampling
        samplers.add((sampler.get("k", 1), sampler.get("temperature"), sampler.get("max_new_tokens")))
        for env_id, (a, b) in by_env.items():
            before, after = pooled.setdefault(env_id, ({}, {}))
            before.update({f"{i}/{example}": value for example, value in a.items()})
            after.update({f"{i}/{example}": value for example, value in b.items()})
    if len(samplers) > 1:
        raise RLHubError(
            f"the pairs sampled differently ((k, temperature, max_new_tokens): {sorted(samplers, key=str)}); pool "
            "evals of one sampler"
        )
    [(k, _, _)] = samplers
    return [_paired(env_id, a, b, k) for env_id, (a, b) in pooled.items()]
