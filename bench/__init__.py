"""newsmon benchmarks (issue 8): throughput, polling, latency, memory, tagger and the news-please peer.

Benchmarks, not tests: `make bench` (or `python -m bench`) prints a table of figures against
their targets and never fails on a slow machine. Every ratio is taken from measurements made
side by side in one run, interleaved round by round, so a noisy machine moves both sides alike.
"""
