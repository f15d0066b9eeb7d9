"""`rlhub eval` through the console script, on a tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from rlhub.evaluate import pass_at_k


def test_pass_at_k_matches_brute_force():
    from itertools import combinations

    samples = [True, False, False, True, False]
    for k in (1, 2, 3):
        subsets = list(combinations(samples, k))
        assert abs(pass_at_k(5, 2, k) - sum(any(s) for s in subsets) / len(subsets)) < 1e-12


def test_eval_cli_reports_metrics_and_writes_records(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            shutil.which("rlhub"),
            "eval",
            "arithmetic-v1",
            "--model",
            tiny_model_dir,
            "-n",
            "3",
            "--k",
            "2",
            "--max-new-tokens",
            "4",
            "--json",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["examples"] == 3 and result["samples_per_example"] == 2
    assert set(result["pass_at_k"]) == {"pass@1", "pass@2"} and set(result["rewards"]) == {"correct", "format"}
    records = json.loads((out / "eval.json").read_text())["records"]
    assert len(records) == 6 and all(r["length"] <= 4 for r in records)


# --- OpenAI-compatible endpoints ------------------------------------------------------------------------


def chat_answer(content: str, tokens: int = 5, finish: str = "stop") -> dict:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens},
    }


def scripted_chat(env_ids: list[str], n: int, solved) -> tuple[dict, dict]:
    """A fake endpoint answering each env's test questions: gold where ``solved(env_id, i, attempt)``, else wrong.

    Returns the routes and the per-question attempt counter.
    """
    import threading

    import rlhub

    by_question = {}
    for env_id in env_ids:
        env = rlhub.make(env_id)
        for i, ex in enumerate(env.examples("test", limit=n, seed=0)):
            by_question[ex.prompt[-1]["content"]] = (env_id, i, env.gold_completion(ex))
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def chat(body):
        question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        env_id, i, gold = by_question[question]
        with lock:
            attempt = attempts[question] = attempts.get(question, 0) + 1
        text = gold if solved(env_id, i, attempt) else "<think>guess</think>\n<answer>-1</answer>"
        return 200, chat_answer(text, tokens=7 if text == gold else 3)

    return {("POST", "/v1/chat/completions"): chat}, attempts


def test_endpoint_eval_scores_what_the_endpoint_answers(monkeypatch):
    from fake_http import fake_server

    from rlhub.evaluate import evaluate_env
    from rlhub.generation.openai import ChatClient

    routes, _ = scripted_chat(["arithmetic-v1"], 6, lambda env_id, i, attempt: i % 3 == 0)
    with fake_server(routes) as server:
        client = ChatClient(server.url, "served-model", api_key="sk-test")
        result = evaluate_env("arithmetic-v1", "served-model", n=6, client=client, progress=False, concurrency=4)
    assert result.pass_at_1 == 2 / 6 and result.rewards["correct"] == 2 / 6  # examples 0 and 3 answered gold
    assert result.format_error_rate == 0.0 and result.mean_length == (2 * 7 + 4 * 3) / 6
    assert [r["passed"] for r in result.records] == [i % 3 == 0 for i in range(6)]  # in example order
    body = server.requests[0]["body"]
    assert body["model"] == "served-model" and body["temperature"] == 0.0 and body["max_tokens"] == 256
    assert body["messages"][-1]["role"] == "user" and len(server.requests) == 6
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


def test_endpoint_eval_pass_at_k_counts_every_sample():
    from fake_http import fake_server

    from rlhub.evaluate import evaluate_env
    from rlhub.generation.openai import ChatClient

    # Example 0 is solved on its first attempt only, example 1 never, example 2 on both.
    routes, attempts = scripted_chat(
        ["arithmetic-v1"], 3, lambda env_id, i, attempt: i == 2 or (i == 0 and attempt == 1)
    )
    with fake_server(routes) as server:
        result = evaluate_env("arithmetic-v1", "m", n=3, k=2, client=ChatClient(server.url, "m"), progress=False)
    assert set(attempts.values()) == {2} and server.requests[0]["body"]["temperature"] == 1.0
    assert result.pass_at_k == {"pass@1": (0.5 + 0 + 1) / 3, "pass@2": 2 / 3}


def test_endpoint_retries_rate_limits_and_server_errors_then_succeeds():
    from fake_http import fake_server

    from rlhub.generation.openai import ChatClient

    statuses = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}), (503, "overloaded")]

    def chat(body):
        return statuses.pop(0) if statuses else (200, chat_answer("fine", tokens=2))

    with fake_server({("POST", "/v1/chat/completions"): chat}) as server:
        client = ChatClient(server.url + "/v1", "m", backoff=0.01)
        reply = client.complete([{"role": "user", "content": "hi"}], max_tokens=8, temperature=0.0)
    assert reply == ("fine", "stop", 2) and len(server.requests) == 3


def test_endpoint_refusing_the_key_is_one_error_without_retries():
    from fake_http import fake_server

    from rlhub.errors import RLHubError
    from rlhub.generation.openai import ChatClient

    routes = {("POST", "/v1/chat/completions"): lambda body: (401, {"error": {"message": "Incorrect API key"}})}
    with fake_server(routes) as server:
        client = ChatClient(server.url, "m", backoff=0.01)
        with pytest.raises(RLHubError, match=r"answered 401: Incorrect API key; .*OPENAI_API_KEY"):
            client.complete([{"role": "user", "content": "hi"}], max_tokens=8, temperature=0.0)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "variables, flag, sent",
    [
        ({"OPENAI_API_KEY": "sk-from-env"}, [], "Bearer sk-from-env"),
        ({"OPENAI_API_KEY": "sk-not-this", "MY_KEY": "sk-mine"}, ["--api-key-env", "MY_KEY"], "Bearer sk-mine"),
        ({}, [], None),
    ],
)
def test_eval_cli_sends_the_key_from_the_environment(variables, flag, sent, monkeypatch):
    from click.testing import CliRunner
    from fake_http import fake_server

    from rlhub.cli import main

    for name in ("OPENAI_API_KEY", "MY_KEY"):
        monkeypatch.delenv(name, raising=False)
    routes, _ = scripted_chat(["arithmetic-v1"], 1, lambda env_id, i, attempt: True)
    with fake_server(routes) as server:
        args = ["eval", "arithmetic-v1", "--base-url", server.url, "--model", "served", "-n", "1", "--json", *flag]
        result = CliRunner().invoke(main, args, env=variables)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pass_at_1"] == 1.0
    (request,) = server.requests
    assert {k.lower(): v for k, v in request["headers"].items()}.get("authorization") == sent


@pytest.mark.parametrize("tool_role", ["tool", "user"])
def test_endpoint_eval_runs_tool_episodes_through_the_env(tool_role):
    from fake_http import fake_server

    import rlhub
    from rlhub.evaluate import evaluate_env
    from rlhub.generation.openai import ChatClient

    env = rlhub.make("calculator-v1")
    examples = env.examples("test", limit=2, seed=0)
    gold = {ex.prompt[-1]["content"]: env.gold_transcript(ex) for ex in examples}

    def chat(body):
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        return 200, chat_answer([m for m in gold[question] if m["role"] == "assistant"][turn]["content"])

    with fake_server({("POST", "/v1/chat/completions"): chat}) as server:
        client = ChatClient(server.url, "m", tool_role=tool_role)
        result = evaluate_env("calculator-v1", "m", n=2, client=client, progress=False)
    assert result.pass_at_1 == 1.0 and result.rewards["used_calculator"] == 1.0
    calls = [len([m for m in t if m["role"] == "tool"]) for t in (gold[ex.prompt[-1]["content"]] for ex in examples)]
    assert len(server.requests) == sum(calls) + 2  # one request per assistant turn
    assert [r["transcript"] for r in result.records] == [gold[ex.prompt[-1]["content"]] for ex in examples]
    roles = {m["role"] for r in server.requests for m in r["body"]["messages"]}
    assert ("tool" in roles) == (tool_role == "tool")


def test_eval_cli_on_an_endpoint_writes_json_chart_and_wandb(tmp_path):
    from fake_http import fake_server

    routes, _ = scripted_chat(
        ["arithmetic-v1", "countdown-v0"], 3, lambda env_id, i, attempt: env_id == "arithmetic-v1"
    )
    out = tmp_path / "eval"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "WANDB_API_KEY")}
    env |= {"WANDB_MODE": "offline", "HOME": str(tmp_path)}  # no ~/.netrc credentials either
    with fake_server(routes) as server:
        proc = subprocess.run(
            [
                *(shutil.which("rlhub"), "eval", "arithmetic-v1", "countdown-v0", "--base-url", server.url),
                *("--model", "served", "-n", "3", "--json", "--out", str(out), "--wandb", "--project", "t"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    assert [(r["env_id"], r["pass_at_1"]) for r in results] == [("arithmetic-v1", 1.0), ("countdown-v0", 0.0)]
    for env_id in ("arithmetic-v1", "countdown-v0"):
        assert len(json.loads((out / f"eval-{env_id}.json").read_text())["records"]) == 3
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (run,) = (out / "wandb").glob("offline-run-*")
    (table,) = run.glob("files/media/table/*.table.json")
    data = json.loads(table.read_text())
    assert data["columns"][:3] == ["env", "id", "completion"] and len(data["data"]) == 6
    assert list(run.glob("files/media/images/chart*.png"))


def test_eval_chart_has_a_bar_per_metric_and_model(tmp_path):
    import matplotlib.image

    from rlhub.plot import eval_bars, plot_eval

    def result(env_id, model, p1, correct):
        return {
            "env_id": env_id,
            "model": model,
            "pass_at_k": {"pass@1": p1},
            "mean_reward": correct + 0.1,
            "rewards": {"correct": correct, "format": 1.0},
        }

    results = [result("a-v0", "base", 0.2, 0.2), result("a-v0", "tuned", 0.6, 0.6), result("b-v0", "tuned", 0.5, 0.5)]
    bars = eval_bars(results)
    assert bars["a-v0"]["pass@1"] == {"base": 0.2, "tuned": 0.6} and bars["b-v0"]["pass@1"] == {"tuned": 0.5}
    assert list(bars["a-v0"]) == ["pass@1", "mean reward", "correct", "format"]
    image = matplotlib.image.imread(plot_eval(results, tmp_path / "chart.png"))
    assert image.shape[1] > image.shape[0] > 300  # two panels side by side
