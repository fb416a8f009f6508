"""Resuming a run: what its recipe may change, and what such a change says."""

from __future__ import annotations

from typing import Any

from nnkit.errors import ModelFileError
from nnkit.spec import Spec

#: What a resumed run may change in its recipe; a change to anything else (the seed, the
#: data, the batch size, the optimizer's kind …) would make it another run.
RESUMABLE = ("train.epochs", "train.log_every", "optimizer.lr")
_NOT_RECIPE = {"nodes", "outputs", "loss", "inputs", "dtype", "$schema", "name", "format_version"}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_changes(old: Spec, new: Spec) -> dict[str, tuple[Any, Any]]:
    """The training recipe's fields (dotted paths) whose values differ: path → (old, new)."""
    a = _flat({k: v for k, v in old.to_dict().items() if k not in _NOT_RECIPE})
    b = _flat({k: v for k, v in new.to_dict().items() if k not in _NOT_RECIPE})
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def resume_recipe(stored: Spec, new: Spec, source: str, epochs_done: int) -> tuple[Spec, list[str]]:
    """The recipe a resumed run trains by, and one line per field it changes.

    `new` (the model file given again, or the stored recipe with new epochs) may differ
    from the `stored` one only in `RESUMABLE` fields; anything else is a ModelFileError
    naming each field, since the run would silently become another one.
    """
    if new is stored:  # nothing given to change it (the common load): nothing to compare
        return stored, []
    different = stored.network_differences(new)
    if different:
        raise ModelFileError(f"{source}: the model file's network differs from the checkpoint's "
                             f"({', '.join(different)})")
    changes = recipe_changes(stored, new)
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE}
    if refused:
        shown = ", ".join(f"{k} ({old!r} → {value!r})" for k, (old, value) in refused.items())
        raise ModelFileError(f"{source}: a resumed run keeps its recipe, but this one changes {shown}; only "
                             f"{', '.join(RESUMABLE)} may change (train a new run for the rest)")
    notes = [f"resuming with {k} {old} → {value}" for k, (old, value) in changes.items()]
    schedule = getattr(stored.optimizer, "schedule", None)
    if ("train.epochs" in changes and epochs_done and schedule is not None and schedule.type == "cosine"
            and schedule.total_steps is None):
        old_epochs, new_epochs = changes["train.epochs"]
        notes.append(f"note: the cosine schedule spanned {old_epochs} epochs and now spans {new_epochs}: the "
                     f"remaining epochs follow the new horizon, so the run differs from one trained for "
                     f"{new_epochs} epochs from the start")
    return new.replace(inputs=stored.inputs), notes
