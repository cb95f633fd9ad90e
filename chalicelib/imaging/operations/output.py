"""Output and composition: convert to another format, and pipelines of operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import InvalidRequest
from chalicelib.registry import Param

if TYPE_CHECKING:
    import numpy as np

from chalicelib.imaging.operations.common import (
    DEFAULT_QUALITY,
    MAX_PIPELINE_STEPS,
    OPERATIONS,
    OUTPUT_FORMATS,
    same_size,
)

# ---------------------------------------------------------------- output and composition


@OPERATIONS.register(
    "convert",
    Param("format", str, description="output format", choices=OUTPUT_FORMATS),
    Param("quality", int, DEFAULT_QUALITY, "JPEG/WebP/AVIF quality", minimum=1, maximum=100),
    Param(
        "keep_profile",
        bool,
        False,
        "keep the original's colour space and embed its ICC profile (default: convert to sRGB, no profile)",
    ),
    description="Choose the output format and quality (pixels unchanged; the last convert step wins).",
    scale_plan=same_size,
)
def convert(
    image: np.ndarray, *, format: str, quality: int = DEFAULT_QUALITY, keep_profile: bool = False
) -> np.ndarray:
    return image.copy()


def clean_steps(steps: list) -> list[dict]:
    """Pipeline steps validated through the registry: [{operation, params}] with defaults filled in."""
    if not steps:
        raise InvalidRequest("'steps' must list at least one {operation, params}")
    clean = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("operation"), str):
            raise InvalidRequest(f'steps[{index}] must be an object {{"operation": name, "params": {{…}}}}')
        unknown = sorted(set(step) - {"operation", "params"})
        if unknown:
            raise InvalidRequest(f"steps[{index}] has unknown key(s) {unknown}; allowed: ['operation', 'params']")
        name = step["operation"]
        if name == "pipeline":
            raise InvalidRequest(
                f"steps[{index}]: a pipeline cannot contain a pipeline",
                allowed=[n for n in OPERATIONS.names() if n != "pipeline"],
            )
        try:
            params = OPERATIONS.get(name).clean_params(step.get("params"))
        except InvalidRequest as exc:
            raise InvalidRequest(f"steps[{index}] ({name}): {exc}", code=exc.code, allowed=exc.allowed) from None
        clean.append({"operation": name, "params": params})
    return clean


@OPERATIONS.register(
    "pipeline",
    Param(
        "steps",
        list,
        description=f"up to {MAX_PIPELINE_STEPS} steps {{operation, params}} applied in order "
        "in one decode → steps → encode pass",
        max_items=MAX_PIPELINE_STEPS,
        check=clean_steps,
    ),
    description="Several operations in order, with one decode and one encode.",
)
def pipeline(image: np.ndarray, *, steps: list[dict]) -> np.ndarray:
    for step in steps:
        image = OPERATIONS.get(step["operation"]).func(image, **step["params"])
    return image
