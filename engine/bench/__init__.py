"""Benchmarks run by ``salience bench <name>``: each prints numbers measured side by side."""
