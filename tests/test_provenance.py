"""One git-commit reader (``rlhub.provenance``) behind runs, benchmarks and stored measurements, and one mean."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bench import common as bench_common
from rlhub.authoring.measurements import commit_of
from rlhub.evaluate import mean
from rlhub.provenance import read_commit
from rlhub.trainers import tracking

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(folder, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A checkout with one commit of ``a.txt``."""
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def readers(folder, monkeypatch) -> tuple:
    """What the trainer, the benchmarks and the measurement store record for the checkout at ``folder``."""
    monkeypatch.setattr(tracking, "__file__", str(folder / "tracking.py"))
    monkeypatch.setattr(bench_common, "ROOT", folder)
    return tracking.git_commit(), bench_common.git_state(), commit_of(folder)


def test_a_clean_checkout_is_recorded_alike_by_every_reader(repo, monkeypatch):
    sha = git(repo, "rev-parse", "HEAD")
    (repo / "untracked.txt").write_text("not part of the commit's code\n")
    assert read_commit(repo) == read_commit(repo / ".git" / "..")
    assert (read_commit(repo).sha, read_commit(repo).dirty) == (sha, False)
    assert readers(repo, monkeypatch) == (sha, {"git_commit": sha, "git_dirty": False}, sha[:12])


def test_a_changed_tracked_file_marks_the_commit_dirty(repo, monkeypatch):
    sha = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("two\n")
    assert read_commit(repo).label == f"{sha[:12]}+dirty"
    assert readers(repo, monkeypatch) == (sha, {"git_commit": sha, "git_dirty": True}, f"{sha[:12]}+dirty")


@pytest.mark.parametrize("where", ["a repository without commits", "no repository"])
def test_no_commit_is_recorded_as_unknown_never_as_gits_error_text(tmp_path, monkeypatch, where):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no checkout above tmp_path counts
    if where == "a repository without commits":  # `git rev-parse HEAD` prints "HEAD" here (and fails)
        git(tmp_path, "init", "-q")
    assert read_commit(tmp_path) is None
    assert readers(tmp_path, monkeypatch) == (None, {"git_commit": None, "git_dirty": None}, "unknown")


def test_the_benchmarks_mean_is_rlhubs_mean_with_no_values_missing_not_zero():
    for values in ([1.0, None, 2.0], [0.25], [None, 3.0, None, 4.0, 5.0]):
        assert (
            bench_common.fmean(values)
            == mean(values)
            == sum(v for v in values if v is not None) / len([v for v in values if v is not None])
        )
    assert mean([]) == mean([None]) == 0.0  # a trainer's metric of an empty batch
    assert bench_common.fmean([]) is None and bench_common.fmean([None, None]) is None  # a figure not measured
