"""rlhub serve and its client: a served env scores like a local one; auth, sessions, bad input, failures.

Servers run in this process on loopback (``BackgroundServer``), each on a free port.
"""

import threading
import time

import httpx
import pytest
from click.testing import CliRunner

import rlhub
from rlhub.cli import main
from rlhub.env.registry import get_spec
from rlhub.errors import RLHubError
from rlhub.serve.server import BackgroundServer, create_app, is_loopback, serve

ONE_ENV_PER_DOMAIN = ["countdown-v0", "codegen-v0", "calculator-v1"]
N_EXAMPLES = 100


def served(env_id: str, **options) -> BackgroundServer:
    spec = get_spec(env_id)
    return BackgroundServer(create_app(spec.make, spec.id, **options))


@pytest.fixture(scope="module")
def countdown():
    with served("countdown-v0") as server:
        yield server


@pytest.fixture(scope="module")
def strict():
    """One server for every malformed request in turn, with a 1 MB body limit."""
    with served("countdown-v0", max_body_bytes=1_000_000) as server:
        yield server


def completions_for(env, examples):
    """Per example: its gold completion and another example's (well-formed, wrong here)."""
    golds = [env.gold_completion(ex) for ex in examples]
    return [(gold, golds[(i + 1) % len(golds)]) for i, gold in enumerate(golds)]


@pytest.mark.parametrize("inline", [False, True], ids=["threaded", "inline"])
@pytest.mark.parametrize("env_id", ONE_ENV_PER_DOMAIN)
def test_served_env_gives_the_same_examples_and_rewards_as_the_local_one(env_id, inline):
    local = rlhub.make(env_id)
    with served(env_id, inline=inline) as server:
        remote = rlhub.make(f"{server.url}/{env_id}")
        assert remote.env_id == env_id and remote.rubric.weights == local.rubric.weights
        examples = local.examples("test", limit=N_EXAMPLES)
        assert remote.examples("test", limit=N_EXAMPLES) == examples
        assert [remote.gold_completion(ex) for ex in examples[:5]] == [local.gold_completion(ex) for ex in examples[:5]]
        triples = completions_for(local, examples)
        flat = [c for triple in triples for c in triple]
        rows = [ex for ex in examples for _ in range(2)]
        remote_scores = remote.score_batch(flat, rows)
        remote.close()
    assert remote_scores == local.score_batch(flat, rows)
    # The comparison covers passing completions, not only failing ones.
    assert sum(s.rewards["correct"] for s in remote_scores[::2]) == N_EXAMPLES
    assert sum(s.rewards["correct"] for s in remote_scores[1::2]) < N_EXAMPLES / 2


@pytest.mark.parametrize("inline", [False, True])
def test_inline_routes_run_on_the_event_loop_and_threaded_ones_in_a_worker(inline):
    """``inline`` (the hub sandbox's server) runs each route on the event loop's thread: no hand-off per request."""
    spec = get_spec("countdown-v0")
    seen = []

    def make_env():
        env = spec.make()
        score_batch = env.score_batch

        def recording(completions, examples):
            seen.append(threading.current_thread())
            return score_batch(completions, examples)

        env.score_batch = recording
        return env

    with BackgroundServer(create_app(make_env, spec.id, inline=inline)) as server:
        remote = rlhub.make(f"{server.url}/{spec.id}")
        example = remote.examples("test", limit=1)[0]
        assert remote.score(remote.gold_completion(example), example).reward > 0
        remote.close()
        loop_thread = server._thread
    assert len(seen) == 1 and (seen[0] is loop_thread) == inline


def test_recipe_weights_apply_to_a_served_env_as_to_a_local_one(countdown):
    remote = rlhub.make(f"{countdown.url}/countdown-v0")
    local = rlhub.make("countdown-v0")
    example = local.examples("train", limit=1)[0]
    completion = local.gold_completion(example)
    local.rubric = local.rubric.reweighted({"format": 0.5})
    remote.rubric = remote.rubric.reweighted({"format": 0.5})
    assert remote.score(completion, example) == local.score(completion, example)
    assert remote.score(completion, example).reward == pytest.approx(1.5)
    with pytest.raises(Exception, match="unknown reward"):
        remote.rubric.reweighted({"nope": 1.0})


def test_episodes_in_concurrent_sessions_match_local_episodes(countdown):
    local = rlhub.make("countdown-v0")
    results, errors = {}, []

    def episode(seed: int) -> None:
        try:
            remote = rlhub.make(f"{countdown.url}/countdown-v0")
            observation, info = remote.reset(seed=seed)
            _, reward, terminated, truncated, step_info = remote.step(remote.gold_completion(info["example"]))
            results[seed] = (observation, info["example"].id, reward, terminated, truncated, step_info["rewards"])
            remote.close()
        except Exception as exc:  # surfaced below, with the seed
            errors.append((seed, exc))

    threads = [threading.Thread(target=episode, args=(seed,)) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    for seed, (observation, example_id, reward, terminated, truncated, rewards) in results.items():
        local_observation, local_info = local.reset(seed=seed)
        assert (observation, example_id) == (local_observation, local_info["example"].id)
        assert (reward, terminated, truncated, rewards) == (1.1, True, False, {"correct": 1.0, "format": 1.0})
    assert len(results) == 16


def test_idle_sessions_expire():
    with served("countdown-v0", session_ttl=1.0) as server:
        remote = rlhub.make(f"{server.url}/countdown-v0")
        remote.reset(seed=0)
        time.sleep(1.5)
        with pytest.raises(RLHubError, match=r"404.*no session"):
            remote.step("<answer>1</answer>")
        remote.reset(seed=0)
        assert remote.step("<answer>1</answer>")[2] is True


def test_step_before_reset_is_refused(countdown):
    import gymnasium

    with pytest.raises(gymnasium.error.ResetNeeded):
        rlhub.make(f"{countdown.url}/countdown-v0").step("x")


def test_token_is_required_when_set():
    with served("countdown-v0", token="s3cret") as server:
        url = f"{server.url}/countdown-v0"
        with pytest.raises(RLHubError, match=r"401.*bearer token"):
            rlhub.make(url)
        with pytest.raises(RLHubError, match="401"):
            rlhub.make(url, token="wrong")
        assert rlhub.make(url, token="s3cret").examples("train", limit=2)
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # health needs no token


def test_non_loopback_address_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")
    with pytest.raises(RLHubError, match=r"refusing to serve on 0\.0\.0\.0 without a token"):
        serve("countdown-v0", host="0.0.0.0")
    result = CliRunner().invoke(main, ["serve", "countdown-v0", "--host", "0.0.0.0"], env={"RLHUB_ENV_TOKEN": ""})
    assert result.exit_code == 1 and "without a token" in result.output


@pytest.mark.parametrize(
    "method, route, body, status",
    [
        ("POST", "score", b"{not json", 422),
        ("POST", "score", b'{"completions": "abc", "examples": []}', 422),
        ("POST", "rubric", b'{"completions": ["a", "b"], "columns": [{}]}', 422),
        ("POST", "examples", b'{"split": "validation"}', 400),
        ("POST", "examples", b'{"limit": -1}', 422),
        ("POST", "sessions/nope/step", b'{"action": "x"}', 404),
        ("POST", "sessions", b'{"example": {"id": 1}}', 422),
        ("DELETE", "sessions/nope", b"", 404),
        ("GET", "no-such-route", b"", 404),
        ("POST", "score", b"[" + b" " * 3_000_000 + b"]", 413),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(strict, method, route, body, status):
    url = f"{strict.url}/countdown-v0"
    answer = httpx.request(method, f"{url}/{route}", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert "detail" in answer.json()
    local = rlhub.make("countdown-v0")
    example = local.examples("train", limit=1)[0]
    assert rlhub.make(url).score(local.gold_completion(example), example).reward == pytest.approx(1.1)


def test_unreachable_server_fails_after_bounded_retries_naming_the_url():
    with served("countdown-v0") as server:
        url = f"{server.url}/countdown-v0"
        remote = rlhub.make(url, retries=2, backoff=0.05)
        example = remote.examples("train", limit=1)[0]
    started = time.monotonic()
    with pytest.raises(RLHubError, match=rf"{url} did not answer score after 3 tries .*rlhub serve"):
        remote.score("<answer>1</answer>", example)
    assert time.monotonic() - started < 5
    with pytest.raises(RLHubError, match="did not answer info"):
        rlhub.make(url, retries=0)


def test_urls_that_name_no_env_are_refused():
    with pytest.raises(RLHubError, match=r"looks like http://127\.0\.0\.1:8700/countdown-v0"):
        rlhub.make("http://127.0.0.1:8700")
