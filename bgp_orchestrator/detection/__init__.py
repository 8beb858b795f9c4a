"""Conflict detection: pure detectors over batches of updates, composed into a pipeline."""
