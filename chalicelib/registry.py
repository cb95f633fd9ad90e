"""Registries of named image functions with declared parameters.

An entry is a small function plus the declaration of its parameters (type, range, choices,
default, description) and the runtime it needs. The API validates requests against the
declaration, the OpenAPI document and the web forms are generated from it, and the workers
dispatch through it, so an unknown name or a bad parameter never reaches an image library.

This module and the modules that register entries must import without numpy, OpenCV or
scikit-learn: the api Lambda has none of them. Heavy imports go inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from chalicelib.errors import InvalidRequest

REQUIRED = object()

# Which Lambda layer (and so which queue) an entry needs.
IMAGING = "imaging"
ML = "ml"
INFERENCE = "inference"  # onnxruntime + numpy + Pillow: registered ONNX models

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array", dict: "object"}


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any = REQUIRED
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    max_items: int | None = None
    # Extra validation for composite values (a list of pipeline steps, a box); returns the clean value.
    check: Callable[[Any], Any] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def clean(self, value: Any) -> Any:
        value = self._coerce(value)
        if self.choices is not None and value not in self.choices:
            raise InvalidRequest(
                f"'{self.name}' must be one of {list(self.choices)}, got {value!r}", allowed=list(self.choices)
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise InvalidRequest(f"'{self.name}' must be ≥ {self.minimum}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise InvalidRequest(f"'{self.name}' must be ≤ {self.maximum}, got {value}")
        if self.max_items is not None and isinstance(value, (list, dict)) and len(value) > self.max_items:
            raise InvalidRequest(f"'{self.name}' may have at most {self.max_items} items")
        return self.check(value) if self.check else value

    def _coerce(self, value: Any) -> Any:
        expected = self.type
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is float and isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"'{self.name}' must be a finite number")
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise InvalidRequest(f"'{self.name}' must be of type {_JSON_TYPES[expected]}, got {type(value).__name__}")
        return value

    def json_schema(self) -> dict:
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.type]}
        if self.description:
            schema["description"] = self.description
        if not self.required and self.default is not None:
            schema["default"] = self.default
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What every registry entry has. Each registry has its own subclass naming the hooks its
    runner calls; `Registry.register` accepts exactly those fields as keywords."""

    name: str
    func: Callable
    params: tuple[Param, ...]
    runtime: str = IMAGING
    description: str = ""
    produces_image: bool = True
    # Rules that tie parameters together ("width or height"): the cleaned parameters in, the
    # parameters to use out; raises InvalidRequest.
    check_params: Callable[[dict], dict] | None = None

    def clean_params(self, params: dict | None) -> dict:
        """Validated parameters with defaults filled in; raises InvalidRequest."""
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise InvalidRequest("'params' must be an object")
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise InvalidRequest(
                f"unknown parameter(s) {unknown} for '{self.name}'; allowed: {sorted(declared)}",
                allowed=sorted(declared),
            )
        clean = {}
        for name, param in declared.items():
            if name in params and params[name] is not None:
                clean[name] = param.clean(params[name])
            elif param.required:
                raise InvalidRequest(f"'{self.name}' needs parameter '{name}'")
            else:
                clean[name] = param.default
        return self.check_params(clean) if self.check_params else clean

    def json_schema(self) -> dict:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {p.name: p.json_schema() for p in self.params},
            "required": [p.name for p in self.params if p.required],
        }

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "runtime": self.runtime,
            "produces_image": self.produces_image,
            "params": self.json_schema(),
        }


@dataclass(frozen=True, kw_only=True)
class OperationEntry(Entry):
    """An image operation (chalicelib.imaging.operations); the hooks are run_operation's."""

    # How the step relates to the decode size: (params, width, height) → SameScale, Resamples or
    # None (needs full resolution); absent: full resolution.
    scale_plan: Callable[[dict, float, float], Any] | None = None
    # Parameters in pixels of the full-size image, rescaled for a reduced decode: (params, factor) → overrides.
    rescale: Callable[[dict, float], dict] | None = None


@dataclass(frozen=True, kw_only=True)
class AnalyzerEntry(Entry):
    """An image analyzer (chalicelib.imaging.analyzers)."""

    # Which view of the image the function takes: an AnalysisInput attribute ("array", "pil", "original").
    takes: str = "array"


@dataclass(frozen=True, kw_only=True)
class FeatureEntry(Entry):
    """A feature extractor for training (chalicelib.ml.features)."""

    length: Callable[..., int]  # (**params) → length of the vector
    decode_side: Callable[..., int]  # (**params) → the short side the image must be decoded at


@dataclass(frozen=True, kw_only=True)
class AlgorithmEntry(Entry):
    """A scikit-learn estimator builder (chalicelib.ml.training)."""

    # (params, training labels) → keyword arguments of fit(); e.g. sample weights.
    fit_params: Callable[[dict, Any], dict] | None = None
    # (params, training labels) → None; raises InvalidRequest when the data cannot fit these params.
    check_fit: Callable[[dict, Any], None] | None = None


@dataclass(frozen=True, kw_only=True)
class ModelTaskEntry(Entry):
    """What a registered model does with an image (chalicelib.ml.runtimes)."""


# The fields a registration does not give as keywords.
_BUILT_FIELDS = {"name", "func", "params"}


class Registry[E: Entry]:
    """Name → entry of type `entry_type`. `kind` names the things in messages ("operation", "analyzer")."""

    def __init__(self, kind: str, entry_type: type[E]):
        self.kind = kind
        self.entry_type = entry_type
        self.keywords = frozenset(f.name for f in fields(entry_type)) - _BUILT_FIELDS
        self._entries: dict[str, E] = {}

    def register(self, name: str, *params: Param, **keywords: Any) -> Callable[[Callable], Callable]:
        """Register the decorated function; `keywords` are the entry type's fields, nothing else
        (a misspelt hook would otherwise be silently ignored)."""
        unknown = sorted(set(keywords) - self.keywords)
        if unknown:
            raise TypeError(
                f"{self.kind} {name!r}: unknown keyword(s) {unknown}; "
                f"{self.entry_type.__name__} takes {sorted(self.keywords)}"
            )

        def decorate(func: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            given = {
                **keywords,
                "description": keywords.get("description") or (func.__doc__ or "").strip().split("\n")[0],
            }
            self._entries[name] = self.entry_type(name=name, func=func, params=tuple(params), **given)
            return func

        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> E:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise InvalidRequest(
                f"unknown {self.kind} {name!r}; allowed: {self.names()}",
                code=f"unknown_{self.kind}",
                allowed=self.names(),
            ) from None

    def describe(self) -> list[dict]:
        return [self._entries[n].describe() for n in self.names()]
