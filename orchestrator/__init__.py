"""The path a job takes: config → data → backend → store → poll → eval → report."""
