"""`ray job submit` entrypoints: thin Ray wiring over the core package."""
