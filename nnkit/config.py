"""The one strict pydantic base of everything nnkit validates, and of every config a model
file can fill: layers, optimizers, datasets, metrics, callbacks.

Strict models never coerce a string to a number, reject unknown fields and non-finite
floats, and are frozen so that a validated spec cannot drift.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Bounds for integer fields: every integer in a model file is bounded.
MAX_INT = 2**31 - 1


class Strict(BaseModel):
    """Base of every validated structure: model files, checkpoint headers, training state."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Config(Strict):
    """A component's settings; subclasses add a `type: Literal["Name"] = "Name"` field."""

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
    if field is None or typing.get_origin(field.annotation) is not typing.Literal or len(args) != 1:
        raise TypeError(f"{config.__qualname__}.type must be Literal['<name>'] with one name")
    if not isinstance(args[0], str):
        raise TypeError(f"{config.__qualname__}.type must be a string literal")
    return args[0]
