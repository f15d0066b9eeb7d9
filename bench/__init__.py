"""rlhub's benchmarks: ``python -m bench`` runs them all; each module also runs alone (``python -m bench.sandbox``)."""
