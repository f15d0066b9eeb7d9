# Developer shortcuts. The benchmarks are described in bench/README.md.
PYTHON ?= python

.PHONY: bench bench-quick bench-table

bench:  ## all five benchmarks at full size (under 30 min on 2 idle cores); writes bench/results/
	$(PYTHON) -m bench

bench-quick:  ## the same code paths at small sizes, written to a temporary folder
	$(PYTHON) -m bench --quick

bench-table:  ## the README's Performance table, from bench/results/summary.json
	$(PYTHON) -m bench --table
