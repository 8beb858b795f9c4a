"""Anomaly detection over per-session metric series (Ray-free)."""
