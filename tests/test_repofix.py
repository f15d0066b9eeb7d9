"""repofix-v0: generated projects, the tools through the env loop, the transcript-only reward and its probes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rlhub.env import EpisodeState
from rlhub.envs._repofix_projects import LEVELS, UNITS, _detects
from rlhub.envs.repofix import RUN_TESTS, RepoFixEnv, operator_flip_policy, repofix_probes
from rlhub.rewards.repofix import EditError, apply_edit, replay
from rlhub.rewards.tool_calls import ToolCall, format_tool_calls
from rlhub.sandbox import run_python_batch


def _examples(per_level: int, split: str = "train") -> list:
    return [ex for level in LEVELS for ex in RepoFixEnv(difficulty=level).examples(split, limit=per_level)]


def _play(env: RepoFixEnv, example, turns: list[list[ToolCall]]) -> tuple[list, EpisodeState]:
    """Drive one episode through ``env.respond`` (the trainers' path); return its transcript and state."""
    state, messages = EpisodeState(example=example), list(example.prompt)
    for calls in turns:
        messages.append({"role": "assistant", "content": format_tool_calls(calls)})
        messages += env.respond(messages, state)
        if state.done:
            break
    state.close()
    return messages[len(example.prompt) :], state


def _oracle_turns(example) -> list[list[ToolCall]]:
    edits = [ToolCall("edit_file", {"path": p, "search": s, "replace": r}) for p, s, r in example.answer]
    return [[ToolCall("list_files", {})], edits, [ToolCall("submit", {})]]


def test_every_bug_is_in_the_code_and_noticed_by_its_edge_cases():
    for unit in UNITS:
        for bug in unit.bugs:
            assert unit.source.count(bug.fixed) == 1, (bug, "the fragment must occur once")
            assert unit.source.index(bug.fixed) > unit.source.index('"""\n'), (bug, "in the code, not the docstring")
            edges = [(name, args, None) for name in unit.functions for args in unit.edges[name]]
            correct = {}
            exec(unit.source, correct)
            visible = [(name, args, correct[name](*args)) for name, args, _ in edges]
            assert _detects(unit.source, bug, visible), bug


def test_examples_are_reproducible_and_shaped_by_level():
    for level, shape in LEVELS.items():
        env = RepoFixEnv(difficulty=level)
        first, again = env.examples("train", limit=8), env.examples("train", limit=8)
        assert [(e.prompt, e.answer, e.info) for e in first] == [(e.prompt, e.answer, e.info) for e in again]
        assert [e.info for e in first] != [e.info for e in env.examples("train", limit=8, seed=1)]
        assert env.config.max_turns == shape.turns
        for ex in first:
            assert len(ex.info["files"]) == 1 + 2 * shape.modules
            assert len(ex.answer) == shape.bugs
            assert not any("hidden" in path for path in ex.info["files"])


def test_config_errors_name_the_fix():
    with pytest.raises(Exception, match="difficulty must be one of"):
        RepoFixEnv(difficulty=7)
    assert RepoFixEnv(difficulty=2, max_turns=3).config.max_turns == 3


def test_planted_bugs_fail_visible_tests_and_the_fixes_pass_them():
    examples = _examples(6)
    programs = []
    for ex in examples:
        fixed = replay(_oracle_turns_transcript(ex), ex.info["files"]).files
        programs += [{"code": RUN_TESTS, "files": ex.info["files"]}, {"code": RUN_TESTS, "files": fixed}]
    results = run_python_batch(programs, timeout=10.0)
    for ex, buggy, fixed in zip(examples, results[::2], results[1::2]):
        assert "FAILED" in buggy.stdout, (ex.id, buggy.stdout[-300:])
        assert fixed.stdout.rstrip().endswith("OK"), (ex.id, fixed.stdout[-300:])


def _oracle_turns_transcript(example) -> list:
    return [{"role": "assistant", "content": format_tool_calls(calls)} for calls in _oracle_turns(example)]


def test_oracle_through_the_env_loop_scores_1_on_100_examples_and_a_no_op_agent_0():
    examples = _examples(34)[:100]
    env = RepoFixEnv()
    transcripts = []
    for ex in examples:
        transcript, state = _play(env, ex, _oracle_turns(ex))
        assert state.done and not state.truncated and state.tools.errors == 0
        transcripts.append(transcript)
    start = time.perf_counter()
    scores = env.score_batch(transcripts, examples)
    seconds = time.perf_counter() - start
    assert [s.rewards["correct"] for s in scores] == [1.0] * 100
    assert all(s.rewards["format"] == 1.0 and s.rewards["pass_rate"] == 1.0 for s in scores)
    assert seconds < 60, f"scoring 100 episodes took {seconds:.1f} s"
    noops = [_play(env, ex, [[ToolCall("submit", {})]])[0] for ex in examples[::10]]
    noops += [[{"role": "assistant", "content": "The code looks fine to me."}]] * 10
    for score in env.score_batch(noops, examples[::10] * 2):
        assert score.reward == 0.0 and score.rewards["correct"] == 0.0


def test_tools_through_the_workspace():
    env = RepoFixEnv()
    ex = env.examples("test", limit=1)[0]
    path, search, replace = ex.answer[0]
    read = ToolCall("read_file", {"path": path, "start_line": 1, "end_line": 2})
    twice = ToolCall("edit_file", {"path": path, "search": "\n", "replace": ""})
    turns = [
        [ToolCall("list_files", {}), read, ToolCall("run_tests", {})],
        [twice, ToolCall("edit_file", {"path": "tests/conftest.py", "search": "x", "replace": "y"})],
        [ToolCall("edit_file", {"path": path, "search": search, "replace": replace}), ToolCall("run_tests", {})],
        [ToolCall("submit", {}), ToolCall("list_files", {})],
    ]
    transcript, state = _play(env, ex, turns)
    tools = [m["content"] for m in transcript if m["role"] == "tool"]
    assert tools[0].splitlines() == sorted(ex.info["files"])
    assert tools[1].startswith("   1| def ") and len(tools[1].splitlines()) == 2
    assert "FAILED" in tools[2]
    assert "include more of the surrounding lines" in tools[3] and "no file 'tests/conftest.py'" in tools[4]
    assert tools[5] == f"edited {path}" and tools[6].rstrip().endswith("OK")
    assert tools[7] == "submitted" and "submitted" in tools[8] and tools[8].startswith("error")
    assert state.done and env._repos == {}  # the episode's repository and workspace were released
    assert env.score(transcript, ex).rewards["correct"] == 1.0


def test_the_tool_and_the_reward_apply_edits_alike():
    files = {"a.py": "x = 1\ny = 1\n"}
    assert apply_edit(files, "a.py", "x = 1", "x = 2") == {"a.py": "x = 2\ny = 1\n"}
    for args, message in [
        (("b.py", "x", "y"), "no file 'b.py'"),
        (("a.py", "", "y"), "search is empty"),
        (("a.py", "z", "y"), "not found"),
        (("a.py", "= 1", "y"), "occurs 2 times"),
        (("a.py", 1, "y"), "must be strings"),
    ]:
        with pytest.raises(EditError, match=message):
            apply_edit(files, *args)
    transcript = [
        {
            "role": "assistant",
            "content": format_tool_calls([ToolCall("edit_file", {"path": "a.py", "search": "= 1", "replace": "y"})]),
        },
        {
            "role": "assistant",
            "content": format_tool_calls(
                [ToolCall("edit_file", {"path": "a.py", "search": "x = 1", "replace": "x = 3"}), ToolCall("submit", {})]
            ),
        },
        {
            "role": "assistant",
            "content": format_tool_calls(
                [ToolCall("edit_file", {"path": "a.py", "search": "y = 1", "replace": "y = 3"})]
            ),
        },
    ]
    done = replay(transcript, files)
    assert (
        done.files == {"a.py": "x = 3\ny = 1\n"} and done.edits == 1
    )  # the failed edit and those after submit skipped


def _visible_tests_pass(files_list: list[dict]) -> list[bool]:
    """The reward without its isolation: run the workspace's own tests, pass on exit 0 without a failure shown."""
    results = run_python_batch([{"code": RUN_TESTS, "files": files} for files in files_list], timeout=10.0)
    return [r.ok and "FAILED" not in r.stdout and "Error" not in r.stdout for r in results]


def test_tampering_earns_nothing_though_it_fools_the_visible_tests():
    env = RepoFixEnv(difficulty=2)
    examples = env.examples("train", limit=3)
    for ex in examples:
        (tampering,) = [p for p in repofix_probes(ex) if p.name == "test tampering"]
        transcripts = list(tampering.completions)
        scores = env.score_batch(transcripts, [ex] * len(transcripts))
        assert [s.rewards["correct"] for s in scores] == [0.0] * len(transcripts)
        fooled = _visible_tests_pass([replay(t, ex.info["files"]).files for t in transcripts])
        # Without the hidden tests' isolation, these would pass: test edits, skips, exits, printed "OK".
        assert sum(fooled) >= 7, fooled


def test_every_probe_earns_zero_correctness():
    env = RepoFixEnv(difficulty=1)
    for ex in env.examples("train", limit=2):
        for probe in repofix_probes(ex):
            start = time.perf_counter()
            scores = env.score_batch(list(probe.completions), [ex] * len(probe.completions))
            assert [s.rewards["correct"] for s in scores] == [0.0] * len(scores), probe.name
            assert not any(s.errors for s in scores)
            assert time.perf_counter() - start < (probe.max_seconds or 60)


def test_operator_flip_policy_plays_through_the_tools():
    env = RepoFixEnv(difficulty=1)
    ex = next(e for e in env.examples("train", limit=30) if e.info["bug_kinds"] == ["operator"])
    transcript = operator_flip_policy(env, ex)
    assert env.score(transcript, ex).rewards["format"] in (0.0, 1.0)
    assert any("run_tests" in m["content"] for m in transcript if m["role"] == "assistant")


def test_validate_passes_its_checks_and_every_repofix_probe():
    """Every check and probe passes, the built-in ones included: they replace the whole transcript here
    (``acts_through_tools``), since the gold's earlier edit turns would still fix the bugs."""
    from rlhub.authoring.validate import validate_env

    report = validate_env("repofix-v0", n=4)
    failed = [(c.name, c.detail) for c in report.checks if not c.passed]
    assert not failed, failed
    names = {c.name for c in report.checks}
    assert {"test tampering", "hidden tests claimed", "failing function deleted", "endless loop"} <= names


@pytest.mark.slow
def test_the_cpu_recipe_trains_two_steps_on_the_embedded_model(tmp_path):
    """recipes/repofix.yaml as written (the embedded SmolLM2-135M, its LoRA, the tool episodes) for two steps of one
    prompt: the episodes ran through the env and the run checkpointed. The 135M model calls no tool here, so every
    reward is 0 and the update is skipped (no advantage): this checks the plumbing, not learning."""
    import json

    from rlhub.trainers.loop import train
    from rlhub.trainers.recipe import load_recipe

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "repofix.yaml"
    overrides = ["training.max_steps=2", "training.save_every=2", "training.prompts_per_step=1"]
    overrides += [f"training.output_dir={tmp_path}", "logging.wandb=false"]
    result = train(load_recipe(recipe, overrides), progress=False)
    assert result.steps == 2
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["tools/turns_per_episode"] >= 1 and "rewards/correct/mean" in r for r in steps), steps
    assert (tmp_path / "checkpoints" / "step-000002" / "adapter" / "adapter_model.safetensors").is_file()


def _workspace_servers() -> int:
    """Workspace sandboxes alive now (their server runs as the sandbox's first process)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue
        count += argv.startswith(b"bwrap") and b"_workspace_server" in argv
    return count


def test_served_through_rlhub_serve_with_a_workspace_per_session():
    """``rlhub serve`` serves repofix-v0 like other envs: an episode stepped over HTTP uses its tools (a
    workspace sandbox for run_tests) and earns the local reward; ending the episode releases the sandbox."""
    import rlhub
    from rlhub.rewards.tool_calls import ToolCall
    from rlhub.serve.server import BackgroundServer, create_app

    local = RepoFixEnv(difficulty=1)
    ex = local.examples("test", limit=1)[0]
    path, search, replace = ex.answer[0]
    actions = [
        format_tool_calls([ToolCall("run_tests", {})]),
        format_tool_calls([ToolCall("edit_file", {"path": path, "search": search, "replace": replace})]),
        format_tool_calls([ToolCall("submit", {})]),
    ]
    before = _workspace_servers()
    with BackgroundServer(create_app(lambda: RepoFixEnv(difficulty=1), "repofix-v0")) as server:
        remote = rlhub.make(f"{server.url}/repofix-v0")
        remote.reset(options={"example": ex})
        observation, *_ = remote.step(actions[0])
        assert "FAILED" in observation or "Error" in observation  # the planted bug fails a visible test
        assert _workspace_servers() == before + 1
        remote.step(actions[1])
        _, reward, terminated, _, info = remote.step(actions[2])
        assert terminated and info["rewards"]["correct"] == 1.0
        assert reward == local.score(local_transcript(local, ex, actions), ex).reward
        remote.close()
    deadline = time.monotonic() + 10
    while _workspace_servers() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workspace_servers() == before


def local_transcript(env: RepoFixEnv, example, actions: list[str]) -> list:
    """The transcript the local env makes of the same actions."""
    env.reset(options={"example": example})
    for action in actions:
        env.step(action)
    return env._messages[len(example.prompt) :]
