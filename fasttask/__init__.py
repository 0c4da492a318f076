"""FastTask: Python functions behind an authenticated HTTP API, executed by Celery workers."""

__version__ = "1.0.0"
