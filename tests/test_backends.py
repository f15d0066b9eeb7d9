"""Generation backends without a GPU: vLLM's plumbing against a fake ``vllm`` module, and a fake ``vllm serve``.

The fake engine only checks what rlhub sends and how it reads the answers (prompt ids, sampling
parameters, log-probs, adapter versions, merged weights); scripts/test-vllm.sh runs tests/vllm_tier against a
real server (vLLM's CPU build).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from fake_http import fake_server
from safetensors.torch import load_file

from rlhub.errors import ConfigError, RLHubError
from rlhub.generation import GenerationConfig, Sampling, make_engine
from rlhub.generation.rollout import HFRolloutEngine, stop_token_ids
from rlhub.generation.vllm import VLLMEngine, VLLMServerEngine, max_lora_rank

# --- a fake `vllm` module -------------------------------------------------------------------------------


@dataclass
class Logprob:
    logprob: float


@dataclass
class Output:
    index: int
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]]
    finish_reason: str


@dataclass
class RequestOutput:
    outputs: list[Output]


def scripted(prompt: list[int], j: int, max_tokens: int, stop: int) -> tuple[list[int], list[float], str]:
    """Completion j of a prompt: even j stop after one token, odd j run to max_tokens."""
    if j % 2 == 0:
        return [prompt[-1] + 1 + j, stop], [-0.5 - j, -0.25], "stop"
    return [200 + t for t in range(max_tokens)], [-1.0 - t / 10 for t in range(max_tokens)], "length"


class FakeModel:
    def __init__(self):
        self.loaded: dict[str, torch.Tensor] = {}

    def load_weights(self, weights):
        for name, tensor in weights:
            self.loaded[name] = tensor.detach().clone()


class FakeLLMEngine:
    def __init__(self, llm, in_process: bool = True):
        self.llm = llm
        self.added: list = []
        self.adapter_files: list[dict[str, torch.Tensor]] = []
        self.removed: list[int] = []
        self.fail_add: Exception | None = None
        if in_process:
            self.model_executor = types.SimpleNamespace(
                driver_worker=types.SimpleNamespace(model_runner=types.SimpleNamespace(model=FakeModel()))
            )

    def add_lora(self, request):
        if self.fail_add is not None:
            raise self.fail_add
        path = Path(request.lora_path)
        assert (path / "adapter_config.json").is_file(), "the adapter must be on disk when vLLM loads it"
        self.added.append(request)
        self.adapter_files.append(load_file(path / "adapter_model.safetensors"))
        return True

    def remove_lora(self, lora_id: int) -> bool:
        self.removed.append(lora_id)
        return True


class FakeLLM:
    instances: list[FakeLLM] = []
    in_process = True

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[tuple] = []
        self.prefix_resets = 0
        self.llm_engine = FakeLLMEngine(self, in_process=FakeLLM.in_process)
        FakeLLM.instances.append(self)

    def generate(self, prompts, params, use_tqdm=True, lora_request=None):
        self.calls.append((prompts, params, lora_request))
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            outs = []
            for j in reversed(range(params.n)):  # out of order: the engine must sort by index
                tokens, logps, reason = scripted(ids, j, params.max_tokens, params.stop_token_ids[0])
                # Each position also offers another token, so the engine must pick the sampled one.
                positions = [{t: Logprob(lp), t + 7: Logprob(-9.0)} for t, lp in zip(tokens, logps)]
                outs.append(Output(j, tokens, positions, reason))
            outputs.append(RequestOutput(outs))
        return outputs

    def reset_prefix_cache(self):
        self.prefix_resets += 1


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.__dict__.update(kwargs)


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str
    extra: dict = field(default_factory=dict)


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    vllm.lora, lora.request = lora, request
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    # The colocated engine sets torch.distributed variables; keep them out of later tests.
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    FakeLLM.instances.clear()
    FakeLLM.in_process = True
    return vllm


def load_policy(path: Path, lora: bool):
    from peft import LoraConfig, get_peft_model

    from rlhub.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(path), device="cpu")
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    return model, tokenizer


def perturb_adapter(policy, seed: int) -> None:
    """Give lora_B nonzero values (a fresh adapter is zero), as an optimizer step would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


# --- colocated engine ---------------------------------------------------------------------------------


def test_backend_modules_import_without_vllm():
    code = "import sys, rlhub.generation, rlhub.generation.vllm, rlhub.generation.openai; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.strip() == "False"


def test_vllm_backend_without_vllm_says_how_to_install(monkeypatch, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    with pytest.raises(RLHubError, match=r"pip install 'rlhub\[vllm\]'"):
        make_engine({"backend": "vllm"}, policy, tokenizer)


def test_vllm_logs_go_to_stderr_unless_the_user_chose_a_stream(fake_vllm, monkeypatch):
    # vLLM logs to stdout by default, which broke `rlhub eval --backend vllm --json` on a real vLLM.
    from rlhub.generation.vllm import import_vllm

    monkeypatch.setenv("VLLM_LOGGING_STREAM", "")  # recorded, so the test's change is undone afterwards
    monkeypatch.delenv("VLLM_LOGGING_STREAM")
    assert import_vllm() is fake_vllm and os.environ["VLLM_LOGGING_STREAM"] == "ext://sys.stderr"
    monkeypatch.setenv("VLLM_LOGGING_STREAM", "ext://sys.stdout")
    import_vllm()
    assert os.environ["VLLM_LOGGING_STREAM"] == "ext://sys.stdout"


def test_colocated_engine_starts_vllm_on_the_base_model_with_lora(fake_vllm, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm", "gpu_memory_utilization": 0.25}, policy, tokenizer, seed=3)
    assert isinstance(engine, VLLMEngine) and engine.sync_mode == "adapter"
    kwargs = FakeLLM.instances[-1].kwargs
    assert kwargs["model"] == tiny_model_dir
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] == 8  # r=4 rounds up to vLLM's smallest
    assert kwargs["gpu_memory_utilization"] == 0.25 and kwargs["seed"] == 3
    assert kwargs["logprobs_mode"] == "processed_logprobs"  # log-probs after temperature, like the trainer's
    assert kwargs["distributed_executor_backend"] == "external_launcher"


def test_colocated_generate_maps_sampling_params_and_reads_sampled_logprobs(fake_vllm, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm"}, policy, tokenizer)
    stop = stop_token_ids(tokenizer, policy)
    prompts = [[1, 2, 3], [4, 5]]
    completions = engine.generate(prompts, 2, Sampling(max_new_tokens=3, temperature=0.7, top_p=0.9))

    sent, params, lora_request = FakeLLM.instances[-1].calls[-1]
    assert sent == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": [4, 5]}]
    assert params.kwargs == {
        "n": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 3,
        "logprobs": 0,
        "stop_token_ids": sorted(set(stop)),
    }
    assert lora_request is None  # nothing synced yet: the base model is the zero-initialized policy
    assert [c.prompt_index for c in completions] == [0, 0, 1, 1]
    first, second = completions[0], completions[1]
    assert first.token_ids == [4, stop[0]] and first.logprobs == [-0.5, -0.25] and first.finished
    assert first.text == tokenizer.decode([4], skip_special_tokens=True)  # the stop token is not text
    assert second.token_ids == [200, 201, 202] and second.logprobs == pytest.approx([-1.0, -1.1, -1.2])
    assert not second.finished and second.loss_mask == [1, 1, 1]
    assert completions[2].token_ids == [6, stop[0]]


def test_adapter_sync_loads_each_version_under_a_new_id_and_samples_with_the_latest(fake_vllm, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm"}, policy, tokenizer)
    llm = FakeLLM.instances[-1]
    perturb_adapter(policy, seed=1)
    engine.sync_weights(policy)
    first_path = Path(engine.lora_request.lora_path)
    perturb_adapter(policy, seed=2)
    engine.sync_weights(policy)
    engine.generate([[1, 2]], 1, Sampling(max_new_tokens=2))

    added = llm.llm_engine.added
    assert [r.lora_int_id for r in added] == [1, 2] and len({r.lora_name for r in added}) == 2
    assert llm.calls[-1][2] is added[-1]  # generation uses the newest adapter
    assert llm.llm_engine.removed == [1] and not first_path.exists()  # the old version is unloaded and deleted
    assert llm.prefix_resets == 2
    # What vLLM loaded is the policy's current adapter, not a stale copy.
    current = dict(policy.named_parameters())
    first, latest = ({k: v for k, v in files.items() if "lora_B" in k} for files in llm.llm_engine.adapter_files)
    assert latest and all(torch.equal(t, current[k.replace(".weight", ".default.weight")]) for k, t in latest.items())
    assert not any(torch.equal(first[k], latest[k]) for k in latest)


def test_colocated_engine_runs_tool_episodes(fake_vllm, tiny_model_dir):
    import rlhub
    from rlhub.generation.rollout import encode_prompt, rollout

    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm"}, policy, tokenizer)
    env = rlhub.make("calculator-v1")
    examples = env.examples("test", limit=2)
    episodes = rollout(
        engine, env, examples, [encode_prompt(tokenizer, env, ex) for ex in examples], 2, Sampling(max_new_tokens=3)
    )
    assert [e.prompt_index for e in episodes] == [0, 0, 1, 1]
    # The first turn asks for each prompt's 2 episodes at once (n=2). The scripted sample 0 is one token and a
    # stop token, which calls no tool: one finished model turn. Sample 1 runs to the 3-token budget: cut there,
    # unfinished. Both are all in the loss, and nothing is left to sample.
    assert [params.n for _, params, _ in FakeLLM.instances[-1].calls] == [2]
    stop = stop_token_ids(tokenizer, policy)[0]
    first, second = episodes[0::2], episodes[1::2]
    assert all(e.finished and len(e.messages) == 1 and e.token_ids[1:] == [stop] for e in first)
    assert all(not e.finished and e.token_ids == [200, 201, 202] for e in second)
    assert [e.loss_mask for e in episodes] == [[1, 1], [1, 1, 1]] * 2


def test_adapter_sync_failure_is_an_error_that_names_the_fix(fake_vllm, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm"}, policy, tokenizer)
    engine.sync_weights(policy)
    before = engine.lora_request
    FakeLLM.instances[-1].llm_engine.fail_add = ValueError("target module lm_head is not supported")
    with pytest.raises(RLHubError, match=r"lm_head is not supported.*generation\.sync=merged"):
        engine.sync_weights(policy)
    assert engine.lora_request is before  # still sampling with the last adapter that loaded


def test_merged_sync_of_a_full_model_copies_every_weight(fake_vllm, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=False)
    engine = make_engine({"backend": "vllm"}, policy, tokenizer)
    assert engine.sync_mode == "merged" and "enable_lora" not in FakeLLM.instances[-1].kwargs
    with torch.no_grad():
        policy.model.layers[0].self_attn.q_proj.weight.add_(1.0)  # an update vLLM must see
    engine.sync_weights(policy)
    loaded = FakeLLM.instances[-1].llm_engine.model_executor.driver_worker.model_runner.model.loaded
    expected = dict(policy.named_parameters())
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[n], p.detach()) for n, p in expected.items())


def test_merged_sync_of_a_lora_policy_sends_merged_weights_under_base_names(fake_vllm, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    perturb_adapter(policy, seed=3)
    engine = make_engine({"backend": "vllm", "sync": "merged"}, policy, tokenizer)
    base_q = policy.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()
    expected = copy.deepcopy(policy).merge_and_unload().state_dict()
    engine.sync_weights(policy)
    loaded = FakeLLM.instances[-1].llm_engine.model_executor.driver_worker.model_runner.model.loaded
    assert set(loaded) <= set(expected) and "model.layers.0.self_attn.q_proj.weight" in loaded
    assert not any("lora" in n or "base_layer" in n for n in loaded)
    assert all(torch.allclose(loaded[n], expected[n], atol=1e-6) for n in loaded)
    assert not torch.allclose(loaded["model.layers.0.self_attn.q_proj.weight"], base_q)  # the adapter is in
    after = policy.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    assert torch.equal(after, base_q)  # and taken out of the policy again


def test_merged_sync_fails_clearly_when_vllm_hides_its_model(fake_vllm, tiny_model_dir):
    FakeLLM.in_process = False
    policy, tokenizer = load_policy(tiny_model_dir, lora=False)
    engine = make_engine({"backend": "vllm"}, policy, tokenizer)
    with pytest.raises(RLHubError, match=r"out of the trainer's process"):
        engine.sync_weights(policy)


def test_eval_engine_puts_an_adapter_folder_on_its_base_model(fake_vllm, tiny_model_dir, tmp_path):
    policy, _ = load_policy(tiny_model_dir, lora=True)
    policy.save_pretrained(tmp_path / "adapter")
    engine = VLLMEngine.for_eval(str(tmp_path / "adapter"))
    kwargs = FakeLLM.instances[-1].kwargs
    assert kwargs["model"] == tiny_model_dir and kwargs["enable_lora"] and kwargs["max_lora_rank"] == 8
    engine.generate([[1, 2]], 1, Sampling(max_new_tokens=2))
    assert FakeLLM.instances[-1].calls[-1][2].lora_path == str((tmp_path / "adapter").resolve())
    with pytest.raises(RLHubError, match=r"built for evaluation"):
        engine.sync_weights(policy)


# --- settings and the default engine -------------------------------------------------------------------


def test_hf_backend_is_the_default_and_follows_the_live_policy(tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine(None, policy, tokenizer)
    assert isinstance(engine, HFRolloutEngine) and engine.model is policy
    assert engine.sync_weights(policy) is None


def test_a_backend_given_as_a_path_is_the_factory_it_names(tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "rlhub.generation.rollout:hf_engine"}, policy, tokenizer)
    assert isinstance(engine, HFRolloutEngine) and engine.model is policy
    with pytest.raises(ConfigError, match=r"generation\.backend 'rlhub\.generation\.rollout:nope'.* has no 'nope'"):
        make_engine({"backend": "rlhub.generation.rollout:nope"}, policy, tokenizer)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"backend": "tgi"}, r"generation\.backend must be one of \('hf', 'vllm'\) or a 'package\.module:factory'"),
        ({"backend": "vllm", "vllm_mode": "server"}, r"needs generation\.base_url"),
        ({"backend": "vllm", "vllm_mode": "server", "base_url": "http://x", "sync": "merged"}, r"colocate"),
        ({"backend": "vllm", "gpu_memory_utilization": 1.5}, r"gpu_memory_utilization"),
        ({"backend": "vllm", "vllm_host": "x"}, r"unknown generation setting 'vllm_host'"),
        ({"timeout": "soon"}, r"generation\.timeout: Input should be a valid number.*\(got 'soon'\)"),
    ],
)
def test_generation_settings_fail_early_with_the_fix(settings, message):
    with pytest.raises(ConfigError, match=message):
        GenerationConfig.parse(settings)


def test_server_mode_refuses_a_full_model_before_training(tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=False)
    with pytest.raises(ConfigError, match=r"LoRA policy only"):
        make_engine({"backend": "vllm", "vllm_mode": "server", "base_url": "http://127.0.0.1:9"}, policy, tokenizer)


def test_max_lora_rank_rounds_up_to_a_rank_vllm_accepts():
    assert [max_lora_rank(r) for r in (1, 8, 9, 300, 512)] == [8, 8, 16, 320, 512]
    with pytest.raises(ConfigError, match=r"lower lora\.r"):
        max_lora_rank(513)


# --- behind a fake `vllm serve` ------------------------------------------------------------------------


def vllm_routes(state: dict) -> dict:
    """A fake `vllm serve`: scripted completions, and LoRA loading that can fail or hang as ``state`` says."""

    def completions(body):
        if state.get("hang"):
            state["release"].wait(30)
            return 200, {}
        choices = []
        for j in reversed(range(body["n"])):
            tokens, logps, reason = scripted(body["prompt"], j, body["max_tokens"], body["stop_token_ids"][0])
            logprobs = {"tokens": [f"token_id:{t}" for t in tokens], "token_logprobs": logps, "top_logprobs": None}
            choices.append({"index": j, "text": "ignored", "logprobs": logprobs, "finish_reason": reason})
        return 200, {"id": "cmpl-1", "choices": choices}

    def load(body):
        state.setdefault("adapter_on_disk", []).append((Path(body["lora_path"]) / "adapter_config.json").is_file())
        if state.get("hang"):
            state["release"].wait(30)
        loaded = state.setdefault("loaded", set())
        if body["lora_name"] in loaded:  # as vLLM answers a name it already holds
            return 400, {"error": {"message": f"The lora adapter '{body['lora_name']}' has already been loaded."}}
        answer = state.get("load_answer", (200, "Success: LoRA adapter added"))
        if answer[0] == 200:
            loaded.add(body["lora_name"])
        return answer

    return {
        ("GET", "/v1/models"): lambda body: (200, {"data": [{"id": "served-base"}]}),
        ("POST", "/v1/completions"): completions,
        ("POST", "/v1/load_lora_adapter"): load,
        ("POST", "/v1/unload_lora_adapter"): lambda body: (200, "Success"),
    }


@pytest.fixture
def vllm_server():
    state: dict = {}
    with fake_server(vllm_routes(state)) as server:
        state["release"] = server.release
        server.state = state
        yield server


def test_server_engine_sends_token_ids_and_reads_token_ids_back(vllm_server, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm", "vllm_mode": "server", "base_url": vllm_server.url}, policy, tokenizer)
    assert isinstance(engine, VLLMServerEngine) and engine.model == "served-base"
    stop = stop_token_ids(tokenizer, policy)
    completions = engine.generate([[1, 2, 3], [4, 5]], 2, Sampling(max_new_tokens=3, temperature=0.7, top_p=0.9))

    bodies = sorted(vllm_server.bodies("/v1/completions"), key=lambda b: b["prompt"])
    assert [b["prompt"] for b in bodies] == [[1, 2, 3], [4, 5]]
    assert {(b["n"], b["max_tokens"], b["temperature"], b["top_p"], b["logprobs"]) for b in bodies} == {
        (2, 3, 0.7, 0.9, 0)
    }
    assert all(b["return_tokens_as_token_ids"] and b["model"] == "served-base" for b in bodies)
    assert [c.prompt_index for c in completions] == [0, 0, 1, 1]
    assert completions[0].token_ids == [4, stop[0]] and completions[0].logprobs == [-0.5, -0.25]
    assert completions[0].finished and not completions[1].finished
    assert completions[1].token_ids == [200, 201, 202]


def test_server_adapter_sync_loads_a_new_name_each_step_and_unloads_the_last(vllm_server, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm", "vllm_mode": "server", "base_url": vllm_server.url}, policy, tokenizer)
    engine.sync_weights(policy)
    engine.sync_weights(policy)
    engine.generate([[1, 2]], 1, Sampling(max_new_tokens=2))

    loads = vllm_server.bodies("/v1/load_lora_adapter")
    names = [b["lora_name"] for b in loads]
    assert len(set(names)) == 2 and names[0].endswith("-1") and names[1].endswith("-2")
    assert vllm_server.state["adapter_on_disk"] == [True, True]
    assert [b["lora_name"] for b in vllm_server.bodies("/v1/unload_lora_adapter")] == names[:1]
    assert vllm_server.bodies("/v1/completions")[-1]["model"] == names[1]
    assert not Path(loads[0]["lora_path"]).exists() and Path(loads[1]["lora_path"]).exists()


def test_two_training_processes_can_sync_to_one_server(vllm_server, tiny_model_dir):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    settings = {"backend": "vllm", "vllm_mode": "server", "base_url": vllm_server.url}
    engines = [make_engine(settings, policy, tokenizer) for _ in range(2)]
    for engine in engines:
        engine.sync_weights(policy)
    assert len({e.model for e in engines}) == 2 and len(vllm_server.state["loaded"]) == 2


@pytest.mark.parametrize(
    "answer, message",
    [
        ((404, {"detail": "Not Found"}), r"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve served-base --enable-lora"),
        (
            (400, {"error": {"message": "LoRA rank 64 is greater than max_lora_rank 16"}}),
            r"greater than max_lora_rank 16.*--max-lora-rank",
        ),
    ],
)
def test_server_adapter_sync_failure_names_the_fix(vllm_server, tiny_model_dir, answer, message):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = make_engine({"backend": "vllm", "vllm_mode": "server", "base_url": vllm_server.url}, policy, tokenizer)
    vllm_server.state["load_answer"] = answer
    with pytest.raises(RLHubError, match=message):
        engine.sync_weights(policy)
    assert engine.model == "served-base"  # still sampling from what the server has


@pytest.mark.parametrize("call", ["generate", "sync"])
def test_a_server_that_never_answers_is_an_error_not_a_hang(vllm_server, tiny_model_dir, call):
    policy, tokenizer = load_policy(tiny_model_dir, lora=True)
    engine = VLLMServerEngine(vllm_server.url, tokenizer, [2], timeout=0.5, retries=0)
    vllm_server.state["hang"] = True
    start = time.monotonic()
    with pytest.raises(RLHubError, match=r"did not answer within 0\.5 s"):
        engine.generate([[1, 2]], 1, Sampling(max_new_tokens=2)) if call == "generate" else engine.sync_weights(policy)
    assert time.monotonic() - start < 5


def test_a_server_that_is_not_there_names_the_url(tiny_model_dir):
    _, tokenizer = load_policy(tiny_model_dir, lora=False)
    with pytest.raises(RLHubError, match=r"could not reach http://127\.0\.0\.1:9/v1/models.*vllm serve MODEL"):
        VLLMServerEngine("http://127.0.0.1:9", tokenizer, [2], timeout=2)


def test_server_answers_without_token_ids_are_refused(tiny_model_dir):
    _, tokenizer = load_policy(tiny_model_dir, lora=False)

    def completions(body):
        logprobs = {"tokens": ["Hello"], "token_logprobs": [-0.1]}
        return 200, {"choices": [{"index": 0, "logprobs": logprobs, "finish_reason": "stop"}]}

    with fake_server({("POST", "/v1/completions"): completions}) as server:
        engine = VLLMServerEngine(server.url, tokenizer, [2], model="m")
        with pytest.raises(RLHubError, match=r"ignored return_tokens_as_token_ids"):
            engine.generate([[1]], 1, Sampling(max_new_tokens=1))
    assert server.requests[0]["body"]["prompt"] == [1]
