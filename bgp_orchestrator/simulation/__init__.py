"""A simulated Internet for demos, tests and benchmarks: peers, prefixes, incidents with labels."""
