"""Caps that keep a model file from asking for more than the machine has: the param count
and the activation memory a batch may take, each overridable from the environment."""

from __future__ import annotations

import os

from nnkit.errors import ModelFileError

#: Networks with more params than this are refused before anything is allocated;
#: raise it with NNKIT_MAX_PARAMS or `NetworkPlan(..., max_params=...)`.
DEFAULT_MAX_PARAMS = 1_000_000_000


def default_activation_cap() -> int:
    """Half the machine's memory (8 GiB where it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def max_params_from_env() -> int:
    """The param cap: NNKIT_MAX_PARAMS, else DEFAULT_MAX_PARAMS."""
    return env_count("NNKIT_MAX_PARAMS", DEFAULT_MAX_PARAMS)


def env_count(name: str, default: int) -> int:
    """A whole number ≥ 1 from the environment variable `name`, else `default`;
    ModelFileError for anything else (a knob that is silently ignored is worse than none)."""
    text = os.environ.get(name, "").strip().replace("_", "")
    if not text:
        return default
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise ModelFileError(f"{name}={os.environ[name]!r}: must be a whole number, e.g. {default}") from None
    if value < 1:
        raise ModelFileError(f"{name}={os.environ[name]!r}: must be at least 1")
    return value
