"""Tools for writing environments: ``validate`` (gold, garbage and reward-hack probes), ``envcard`` (the
env cards of ``docs/envs.md``), ``scaffold`` (``rlhub new-env``) and the ``templates`` it copies."""
