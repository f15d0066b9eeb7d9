"""The starting points ``rlhub new-env`` writes: one working toy environment per domain, and its test.

Each template is a real environment module (it imports, validates and lint-checks as it is), written
with placeholder names that :mod:`rlhub.authoring.scaffold` replaces: ``ScaffoldName`` (class prefix),
``scaffold_name`` (module), ``scaffold-name`` (example ids) and ``scaffold-name-v0`` (registry id).
"""
