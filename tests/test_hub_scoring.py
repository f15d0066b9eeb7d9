"""Scoring through a sandboxed env: a batch travels in one round trip and scores as the same env in-process, and a
violation the env's own code swallows still ends the call."""

from __future__ import annotations

import textwrap

import pytest
from hub_packages import install_packages, write_package

import rlhub
from rlhub.env import registry
from rlhub.hub import CapabilityViolation
from rlhub.hub.client import SandboxClient, SandboxedEnv
from rlhub.hub.sandbox import bwrap_problem

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable: {bwrap_problem()}")


SWALLOWED = textwrap.dedent("""\
    try:
        open('/home/secret.txt').read()
    except OSError:
        pass""")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two freshly installed packages (rlhub's arithmetic underneath): ``scoring`` and ``swallowed``, whose
    scoring tries to read outside its view and catches the error."""
    root = tmp_path_factory.mktemp("scoring")
    attacks = {"scoring": "pass", "swallowed": SWALLOWED}
    sources = [write_package(root, "", attack, {}, slug=slug) for slug, attack in attacks.items()]
    install_packages(sources, root / "site")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHUB_CACHE", str(root / "cache"))  # the entries cache, away from the user's
        patch.syspath_prepend(str(root / "site"))
        registry.clear_cache()
        yield
    registry.clear_cache()


@pytest.fixture(scope="module")
def env(site):
    """The sandboxed env of the ``scoring`` package."""
    env = rlhub.make("scoring-v0")
    yield env
    env.close()


def test_a_batch_is_scored_in_one_round_trip(env, monkeypatch):
    assert isinstance(env, SandboxedEnv)
    examples = env.examples("train", limit=65)
    golds = [env.gold_completion(example) for example in examples]
    completions = [golds[i] if i % 2 == 0 else golds[i + 1] for i in range(64)]  # odd ones: a wrong answer
    routes, call = [], SandboxClient.call

    def counted(self, method, route, *args, **kwargs):
        routes.append(route)
        return call(self, method, route, *args, **kwargs)

    monkeypatch.setattr(SandboxClient, "call", counted)
    scores = env.score_batch(completions, examples[:64])
    assert routes == ["score"]
    env.rubric.score_batch(completions, [example.columns() for example in examples[:64]])
    assert routes == ["score", "rubric"]
    right = [i % 2 == 0 or examples[i].answer == examples[i + 1].answer for i in range(64)]
    assert [s.rewards["correct"] for s in scores] == [float(r) for r in right] and not all(right)
    # The same package trusted runs in this process and scores alike.
    monkeypatch.setenv("RLHUB_TRUST", "rlhub-env-scoring")
    local = rlhub.make("scoring-v0")
    assert not isinstance(local, SandboxedEnv)
    assert [s.rewards for s in local.score_batch(completions, examples[:64])] == [s.rewards for s in scores]


def test_a_violation_the_env_swallows_still_ends_the_call(site):
    env = rlhub.make("swallowed-v0")
    example = env.examples("train", limit=1)[0]
    with pytest.raises(CapabilityViolation, match=r"\(filesystem\): read of /home/secret.txt") as err:
        env.score_batch([env.gold_completion(example)], [example])
    assert err.value.package == "rlhub-env-swallowed" and not env.sandbox.running
