"""Example task: the hypotenuse of a right triangle, using a helper from packages/."""

from pydantic import BaseModel, Field

from packages.tools import square


class Params(BaseModel):
    a: float = Field(gt=0, description="length of the first leg")
    b: float = Field(gt=0, description="length of the second leg")


class Result(BaseModel):
    hypotenuse: float


def get_hypotenuse(a: float, b: float) -> Result:
    """Compute the hypotenuse of a right triangle with legs a and b."""
    return Result(hypotenuse=(square(a) + square(b)) ** 0.5)
