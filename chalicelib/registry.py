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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import InvalidRequest

REQUIRED = object()

# Which Lambda layer (and so which queue) an entry needs.
IMAGING = "imaging"
ML = "ml"

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


@dataclass(frozen=True)
class Entry:
    name: str
    func: Callable
    params: tuple[Param, ...]
    runtime: str = IMAGING
    description: str = ""
    produces_image: bool = True
    extra: dict = field(default_factory=dict)

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
        # Rules that tie parameters together ("width or height") live with the entry.
        check = self.extra.get("check_params")
        return check(clean) if check else clean

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


class Registry:
    """Name → Entry. `kind` names the things in messages ("operation", "analyzer")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *params: Param,
        runtime: str = IMAGING,
        description: str = "",
        produces_image: bool = True,
        **extra: Any,
    ) -> Callable[[Callable], Callable]:
        def decorate(func: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            doc = description or (func.__doc__ or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, func, tuple(params), runtime, doc, produces_image, extra)
            return func

        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
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
