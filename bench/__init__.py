"""Benchmarks that print figures (never asserted timings); run each as `python -m bench.<name>`."""
