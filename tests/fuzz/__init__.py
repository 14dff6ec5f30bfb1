"""Property-based fuzzing of every input a user hands the autoscaler (issue #19).

The property, for configuration files, trace files, state files and command-line options:
every input either works or is refused with exit status 2 and a message that names the
file (and, where the problem is one node or row, its line); never a traceback, never a
pydantic message or URL, never a hang (each case runs under a wall-clock guard and a
Hypothesis deadline).

The strategies mutate *valid* inputs (the shipped examples, the files the controller
writes, small traces in each format) rather than drawing random bytes, which reaches far
deeper into the readers: replace a random node with a random YAML/JSON value (huge and
negative integers, NaN, infinities, 1e308, booleans, unicode, empty and very long text,
lists, mappings, null), delete a key, add an unknown one, duplicate one, add anchors and
aliases, truncate the text, insert random bytes, a byte-order mark or a NUL.

Files:
- harness.py: the settings (example counts, deadline, seeding), the wall-clock guard, the
  value strategies and the checks every test shares;
- test_fuzz_config.py: `autoscaler validate` and `load_config` over mutated example
  configurations, the AutoscalingPool specs of k8s/examples, and `simulate` of a mutated
  configuration that still validates;
- test_fuzz_traces.py: `autoscaler simulate --trace` over mutated traces in the csv,
  azure-llm and alibaba-gpu formats;
- test_fuzz_state.py: `autoscaler run --once --state` and `explain --state` over mutated
  state files the controller wrote;
- test_fuzz_cli.py: random values for the numeric, duration and path options of simulate,
  sweep, explain and run.

Running it:
    .venv/bin/pytest tests/fuzz -q                      # the CI budget: well under 90 s
    FUZZ_EXAMPLES=3000 .venv/bin/pytest tests/fuzz -q   # a long campaign, same seeds
    FUZZ_EXAMPLES=3000 FUZZ_RANDOM=1 .venv/bin/pytest tests/fuzz -q -p no:cacheprovider \\
        --hypothesis-seed=1234                          # a fresh, reproducible exploration

By default every test is derandomized (the same examples on every run, so CI is
reproducible) and keeps no example database (nothing is written into the checkout).
FUZZ_DEADLINE (seconds, default 5) sets the per-example deadline; the wall-clock guard
interrupts an example at four times that. A failure found by the fuzzer is fixed in the
product and kept here as an `@example`, so it is checked on every run.
"""
