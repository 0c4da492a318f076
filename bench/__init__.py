"""Benchmark FastTask against bare Celery on one machine: `python -m bench`."""
