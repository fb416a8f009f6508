"""Base of every config model that a model file can fill: layers, optimizers, datasets.

Configs are strict (a string is never coerced to a number), reject unknown fields and
non-finite floats, and are frozen so that a validated spec cannot drift.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Bounds for integer fields: every integer in a model file is bounded.
MAX_INT = 2**31 - 1


class Config(BaseModel):
    """A component's settings; subclasses add a `type: Literal["Name"] = "Name"` field."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    type: str


def type_name_of(component: Any) -> str:
    """The `type` literal of a component class's `Config`, e.g. `"Affine"`.

    Raises `TypeError` when the class has no `Config` with a single-string `Literal` type.
    """
    config = getattr(component, "Config", None)
    if not (isinstance(config, type) and issubclass(config, Config)):
        raise TypeError(f"{component!r} has no Config subclassing nnkit.Config")
    field = config.model_fields.get("type")
    args = typing.get_args(field.annotation) if field is not None else ()
    if typing.get_origin(field.annotation) is not typing.Literal or len(args) != 1:
        raise TypeError(f"{config.__qualname__}.type must be Literal['<name>'] with one name")
    if not isinstance(args[0], str):
        raise TypeError(f"{config.__qualname__}.type must be a string literal")
    return args[0]
