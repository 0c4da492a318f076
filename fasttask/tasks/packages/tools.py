"""Helpers shared by task modules; import them with `from packages.tools import ...`."""


def square(x: float) -> float:
    return x * x
