"""Random streams: every run's randomness comes from `numpy.random.Generator`s seeded here.

One seed gives independent streams (data, network, shuffle) through `SeedSequence.spawn`,
so changing the batch size never changes the data, and the init never changes the order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnkit.errors import CheckpointError

# Appending a name keeps the earlier streams as they were (spawn keys are positional).
STREAMS = ("data", "network", "shuffle", "split", "validation")


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators: data, the network's init and dropout, shuffling, the
    validation split, and a validation dataset."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.Generator(np.random.PCG64(child)) for name, child in zip(STREAMS, children)}


def state_to_data(rng: np.random.Generator) -> dict[str, Any]:
    """A PCG64 generator's state as msgpack-safe data (its 128-bit integers as hex strings)."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise TypeError(f"only PCG64 generators can be saved, not {state['bit_generator']}")
    return {
        "bit_generator": "PCG64",
        "state": format(state["state"]["state"], "x"),
        "inc": format(state["state"]["inc"], "x"),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def state_from_data(data: Any, where: str) -> np.random.Generator:
    """The generator that `state_to_data` described; CheckpointError when malformed."""
    try:
        if data["bit_generator"] != "PCG64":
            raise ValueError("not PCG64")
        state, inc = int(data["state"], 16), int(data["inc"], 16)
        if not (0 <= state < 2**128 and 0 <= inc < 2**128):
            raise ValueError("out of range")
        bit_generator = np.random.PCG64()
        bit_generator.state = {
            "bit_generator": "PCG64", "state": {"state": state, "inc": inc},
            "has_uint32": int(data["has_uint32"]), "uinteger": int(data["uinteger"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: malformed random-generator state ({exc})") from None
    return np.random.Generator(bit_generator)
