"""A served episode's steps return what the local env's steps return, info included, turn by turn."""

import rlhub
from rlhub.env.registry import get_spec
from rlhub.serve.server import BackgroundServer, create_app


def test_a_served_multi_turn_episode_steps_like_the_local_one():
    env_id = "calculator-v1"
    spec = get_spec(env_id)
    local = rlhub.make(env_id)
    _, info = local.reset(seed=3)
    gold = [m["content"] for m in local.gold_transcript(info["example"]) if m["role"] == "assistant"]
    actions = ["<tool_call>{not json</tool_call>", *gold]  # a malformed call first, so that tool_errors counts
    with BackgroundServer(create_app(spec.make, spec.id)) as server:
        remote = rlhub.make(f"{server.url}/{env_id}")
        remote.reset(seed=3)
        local.reset(seed=3)
        steps = [(remote.step(action), local.step(action)) for action in actions]
        remote.close()
    for turn, (remote_step, local_step) in enumerate(steps, start=1):
        assert remote_step == local_step
        assert remote_step[4]["turns"] == turn
    assert steps[0][0][4]["tool_errors"] == 1 and steps[-1][0][4]["tool_calls"] == 1
    assert steps[-1][0][2] is True and steps[-1][0][4]["rewards"]["correct"] == 1.0
