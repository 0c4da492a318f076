"""Example task: the area of a circle."""

import math

from pydantic import BaseModel, Field


class Params(BaseModel):
    r: float = Field(gt=0, description="radius, greater than 0")


class Result(BaseModel):
    area: float


def get_circle_area(r: float) -> dict:
    """Compute the area of a circle of radius r."""
    return {"area": math.pi * r**2}
