"""The measured env cards and the leaderboard: what a model scores on each env, how hard, how trustworthy, how costly.

``python -m tools.leaderboard measure`` evaluates the embedded model (and any ``--model``, or an endpoint with
``--base-url``) on every registered env and stores the numbers, dated with the commit, in
``docs/measurements.json``; ``write`` renders ``docs/leaderboard.md``, ``docs/leaderboard.json`` and the README's
baseline column from them; ``record-run`` stores a finished training run for its env's card. The env cards
render the same numbers through :mod:`rlhub.authoring.measurements`, the only part that ships in the package.
Tests keep the pages current against the stored JSON, which CI never re-measures.

* :mod:`~tools.leaderboard.measure`: measuring one model on one env, returning records.
* :mod:`~tools.leaderboard.records`: those records, and the form they are stored in.
* :mod:`~tools.leaderboard.stats`: standard errors and quantiles.
* :mod:`~tools.leaderboard.render`: the pages and charts, as text.
* :mod:`~tools.leaderboard.pages`: the files: measuring every env into the JSON, recording a run, writing pages.

reasoning-gym's tasks (``rg/<task>-v0``) are measured as one family: a fixed spread of its tasks, a few
examples each.
"""
