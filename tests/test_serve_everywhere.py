"""A served env's URL works wherever a registered id does: ``rlhub eval``, ``rlhub validate``, TRL rewards.

Servers run in this process on loopback (``BackgroundServer``); each test compares the served env's
numbers with the same env made locally.
"""

import json
import pickle

import pytest
from click.testing import CliRunner
from fake_http import fake_server
from test_evaluate import scripted_chat

import rlhub
from rlhub.cli import main
from rlhub.env.registry import get_spec
from rlhub.errors import ConfigError
from rlhub.evaluate import rescore
from rlhub.integrations.trl import environment_factory, reward_funcs, reward_weights, to_dataset
from rlhub.serve.client import EnvServerUnreachable
from rlhub.serve.server import BackgroundServer, create_app


def served(env_id: str) -> BackgroundServer:
    spec = get_spec(env_id)
    return BackgroundServer(create_app(spec.make, spec.id))


@pytest.fixture(scope="module")
def arithmetic():
    with served("arithmetic-v1") as server:
        yield f"{server.url}/arithmetic-v1"


@pytest.fixture(scope="module")
def calculator():
    with served("calculator-v1") as server:
        yield f"{server.url}/calculator-v1"


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_eval_cli_on_a_url_reports_what_the_local_env_reports(arithmetic, tmp_path):
    # Examples 0, 2 and 4 of 6 are answered with their gold completion, the others wrongly.
    routes, _ = scripted_chat(["arithmetic-v1"], 6, lambda env_id, i, attempt: i % 2 == 0)
    outcomes = {}
    with fake_server(routes) as endpoint:
        for name, env_id in (("local", "arithmetic-v1"), ("served", arithmetic)):
            out = tmp_path / name
            code, output = run_cli(
                *("eval", env_id, "--base-url", endpoint.url, "--model", "m", "-n", "6"),
                *("--json", "--out", str(out), "--no-plot"),
            )
            assert code == 0, output
            outcomes[name] = (json.loads(output), json.loads((out / "eval.json").read_text())["records"])
    (local, local_records), (remote, remote_records) = outcomes["local"], outcomes["served"]
    assert remote["env_id"] == arithmetic and local["env_id"] == "arithmetic-v1"
    assert remote["pass_at_1"] == local["pass_at_1"] == 0.5
    assert remote["rewards"] == local["rewards"] and remote["mean_reward"] == local["mean_reward"]
    assert remote_records == local_records
    # The stored eval re-scores through the server: nothing changed, no code hash to compare.
    (report,) = rescore(tmp_path / "served")
    assert report.checked == 6 and report.changed == [] and report.notes == []
    manifest = json.loads((tmp_path / "served" / "manifest.json").read_text())["envs"][0]
    assert manifest["source"] == arithmetic and manifest["code_hash"] is None


def test_eval_cli_refuses_config_overrides_for_a_url(arithmetic):
    code, output = run_cli("eval", arithmetic, "--base-url", "http://127.0.0.1:9", "--model", "m", "--config", "a=1")
    assert code == 1 and "--config cannot change a served env" in output and "Traceback" not in output


@pytest.mark.parametrize("env_id", ["arithmetic-v1", "calculator-v1"])
def test_validate_cli_on_a_url_passes_the_checks_the_local_env_passes(env_id, arithmetic, calculator):
    url = {"arithmetic-v1": arithmetic, "calculator-v1": calculator}[env_id]
    reports = {}
    for name in (env_id, url):
        code, output = run_cli("validate", name, "-n", "4", "--json")
        assert code == 0, output
        (reports[name],) = json.loads(output)
    local = {c["name"]: c for c in reports[env_id]["checks"]}
    remote = {c["name"]: c for c in reports[url]["checks"]}
    assert reports[url]["passed"] and reports[url]["env_id"] == url
    # Every check and built-in probe runs through the server with the local outcome; only the env's own
    # probe functions (code, not data) stay on the server.
    assert "gold scores 1.0" in remote and "gymnasium api" in remote and len(remote) >= 8
    for name, check in remote.items():
        assert check == local[name], name


def test_trl_rewards_from_a_url_match_the_local_ones_and_survive_pickling(arithmetic):
    local_fns, remote_fns = reward_funcs("arithmetic-v1"), reward_funcs(arithmetic)
    assert [f.__name__ for f in remote_fns] == [f.__name__ for f in local_fns] == ["correct", "format"]
    assert reward_weights(arithmetic) == reward_weights("arithmetic-v1")
    dataset = to_dataset(arithmetic, limit=8)
    assert dataset.to_list() == to_dataset("arithmetic-v1", limit=8).to_list()
    env = rlhub.make("arithmetic-v1")
    golds = [env.gold_completion(ex) for ex in env.examples("train", limit=8)]
    completions = [[{"role": "assistant", "content": golds[(i + i % 2) % 8]}] for i in range(8)]  # odd: wrong
    columns = {k: v for k, v in dataset.to_dict().items() if k != "prompt"}  # lists, as TRL passes them
    for local_fn, remote_fn in zip(local_fns, remote_fns):
        expected = local_fn(completions=completions, prompts=dataset.to_dict()["prompt"], **columns)
        assert remote_fn(completions=completions, prompts=dataset.to_dict()["prompt"], **columns) == expected
        # A spawned TRL worker gets the function pickled: it reconnects to the URL, not to a local env.
        again = pickle.loads(pickle.dumps(remote_fn))
        assert repr(again).startswith(f"EnvReward({arithmetic!r}")
        assert again(completions=completions, **columns) == expected
    assert remote_fns[0](completions=completions, **columns) == [1.0, 0.0] * 4


def test_trl_environment_factory_refuses_a_url_with_the_fix(calculator):
    with pytest.raises(ConfigError, match=r"tools run on its server.*pass the env id \('calculator-v1'\)"):
        environment_factory(calculator)


def test_trl_reward_on_a_server_that_is_gone_is_an_error_naming_the_url_not_a_zero():
    with served("arithmetic-v1") as server:
        url = f"{server.url}/arithmetic-v1"
        correct, _ = reward_funcs(url, retries=1, backoff=0.01)
        row = to_dataset(url, limit=1).to_dict()
        gold = rlhub.make("arithmetic-v1").gold_completion(rlhub.make(url).examples("train", limit=1)[0])
        completions = [[{"role": "assistant", "content": gold}]]
        assert correct(completions=completions, answer=row["answer"]) == [1.0]
    with pytest.raises(EnvServerUnreachable, match=rf"{url} did not answer rubric after 2 tries"):
        correct(completions=completions, answer=row["answer"])
