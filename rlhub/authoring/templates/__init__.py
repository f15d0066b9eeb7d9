"""The starting points ``rlhub new-env`` writes: one working toy environment per domain, and its test.

Each template is a real environment module (it imports, validates and lint-checks as it is), written
with placeholder names that :mod:`rlhub.authoring.scaffold` replaces: ``ScaffoldName`` (class prefix),
``scaffold_name`` (module), ``scaffold-name`` (example ids) and ``scaffold-name-v0`` (registry id).
What a template shares with the shipped envs (the math and tool-call rubrics, the tool-call count, the
sandboxed program run behind a ``python`` tool) it imports from ``rlhub.rewards``, as those envs do, so a
scaffolded package depends on public names only; the single-turn math toy spells its rubric out, the example
of writing reward functions.
"""
