"""An environment as a container: rlhub env build, serving from it, and training against it."""

import json

import pytest

import rlhub
from rlhub.serve.container import build, running, serving
from rlhub.trainers.recipe import load_recipe

ENV_ID = "countdown-v0"


@pytest.fixture(scope="module")
def image(sandbox_image):
    return build(ENV_ID)


def env_containers(client) -> list:
    return client.containers.list(all=True, filters={"label": f"rlhub.env={ENV_ID}"})


def test_build_is_cached_by_content(image):
    assert image.startswith("rlhub-env-countdown-v0:")
    assert build(ENV_ID) == image  # nothing changed: the same image, not a new one


def test_container_serves_the_same_rewards_as_the_local_env_and_runs_unprivileged(docker_client, image):
    local = rlhub.make(ENV_ID)
    examples = local.examples("test", limit=50)
    golds = [local.gold_completion(ex) for ex in examples]
    completions = golds + golds[1:] + golds[:1]  # each gold, then each example with another's answer
    with running(ENV_ID, port=18701, image=image) as url:
        [container] = env_containers(docker_client)
        settings = container.attrs["HostConfig"]
        assert container.attrs["Config"]["User"] == "65534:65534" and settings["ReadonlyRootfs"]
        assert settings["CapDrop"] == ["ALL"]
        remote = rlhub.make(url)
        assert remote.examples("test", limit=50) == examples
        assert remote.score_batch(completions, examples + examples) == local.score_batch(completions, examples * 2)
    assert not env_containers(docker_client)  # removed when the block ends


def test_training_two_steps_against_the_env_container(docker_client, image, tiny_model_dir, tmp_path):
    from rlhub.trainers.loop import train

    out = tmp_path / "run"
    values = {
        "model.name": tiny_model_dir,
        "env.id": ENV_ID,
        "env.container": True,
        "algorithm.group_size": 4,
        "training.max_steps": 2,
        "training.prompts_per_step": 2,
        "training.micro_batch_size": 4,
        "training.max_new_tokens": 8,
        "training.save_every": 1,
        "training.output_dir": str(out),
        "logging.wandb": False,
    }
    recipe = load_recipe(None, values)
    result = train(recipe, recipe_name="container", progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert "rewards/correct/mean" in rows[0] and "rewards/format/mean" in rows[0]
    assert (out / "checkpoints" / "step-000002").is_dir() and result.summary["checkpoint"]
    assert not env_containers(docker_client)  # stopped at the end of the run


def test_serving_without_a_container_passes_the_url_through():
    with serving(ENV_ID, url="http://127.0.0.1:1/countdown-v0") as url:
        assert url == "http://127.0.0.1:1/countdown-v0"
    with serving(ENV_ID) as url:
        assert url is None
