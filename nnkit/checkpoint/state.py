"""Reading a checkpoint's training state, checked as strictly as its arrays.

A file can pass every checksum and still be wrong inside (a buggy writer, a crafted file):
every array name must be one nnkit writes; optimizer slots must have exactly their param's
dtype and shape (never cast or broadcast) and the layout version of the installed
optimizer; the random streams must be there; an unfinished epoch's order must be a
permutation; the history must count the epochs. Every failure is a CheckpointError naming
the field. What needs the training data (the order's length, the position within the
epoch) is checked by the runner before it trains (`Runner.check_resume`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from nnkit.errors import CheckpointError
from nnkit.names import NAME_PATTERN
from nnkit.optim.optimizers import Optimizer
from nnkit.training.rng import state_from_data
from nnkit.training.state import TrainingState

if TYPE_CHECKING:
    from nnkit.checkpoint.reader import Checkpoint
    from nnkit.network import Network

STREAMS = ("network", "shuffle")  # the random streams a run carries from step to step
_NAME = NAME_PATTERN.strip("^$")
_ARRAY_NAMES = re.compile(rf"^(params|grads)/{_NAME}\.{_NAME}$|^optimizer/{_NAME}\.{_NAME}/{_NAME}$"
                          rf"|^progress/order$|^callbacks/{_NAME}/{_NAME}(\.{_NAME})?$|^state/{_NAME}\.{_NAME}$")


def read_training_state(checkpoint: Checkpoint, network: Network, optimizer: Optimizer, *,
                        with_optimizer: bool = True) -> TrainingState:
    """The stored optimizer state loaded into `optimizer` (unless `with_optimizer` is False:
    nothing of it is read), the random streams, the progress and the callbacks' arrays."""
    path, header = checkpoint.path, checkpoint.header
    unknown = [n for n in checkpoint.file.names() if not _ARRAY_NAMES.match(n)]
    if unknown:
        raise CheckpointError(f"{path}: unknown array name {unknown[0]!r}; nnkit writes none such")
    if with_optimizer:
        _load_optimizer(checkpoint, network, optimizer)
    progress = header.progress.model_copy(deep=True)
    if [r.get("epoch") for r in progress.history] != list(range(1, len(progress.history) + 1)) or \
            len(progress.history) != progress.epoch:
        raise CheckpointError(f"{path}: progress.history does not count the {progress.epoch} finished epochs")
    if header.optimizer is not None and with_optimizer and header.optimizer.iterations != progress.step:
        raise CheckpointError(f"{path}: optimizer.iterations {header.optimizer.iterations} is not "
                              f"progress.step {progress.step}")
    rngs = _streams(checkpoint, network, trained=progress.step > 0)
    order = None
    if progress.position and "progress/order" in checkpoint.file.index:  # (train.bptt keeps none)
        order = np.array(checkpoint.file.array("progress/order"))
        if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer) or \
                not np.array_equal(np.sort(order), np.arange(len(order))):
            raise CheckpointError(f"{path}: progress/order is not a permutation of the samples")
    elif "progress/order" in checkpoint.file.index:
        raise CheckpointError(f"{path}: progress/order without an unfinished epoch")
    carried = {name[len("state/"):]: np.array(checkpoint.file.array(name)) for name in checkpoint.file.names("state/")}
    try:
        network.set_states(carried)  # stateful layers go on from where the epoch stopped
    except ValueError as exc:
        raise CheckpointError(f"{path}: state/: {exc}") from None
    callback_arrays: dict[str, dict[str, np.ndarray]] = {}
    for name in checkpoint.file.names("callbacks/"):
        _, key, array_name = name.split("/", 2)
        callback_arrays.setdefault(key, {})[array_name] = np.array(checkpoint.file.array(name))
    return TrainingState(optimizer, rngs, progress, order, header.created, callback_arrays)


def _load_optimizer(checkpoint: Checkpoint, network: Network, optimizer: Optimizer) -> None:
    from nnkit.checkpoint.lock import check_version

    path, info = checkpoint.path, checkpoint.header.optimizer
    stored = {n[len("optimizer/"):]: n for n in checkpoint.file.names("optimizer/")}
    kind = optimizer.config.type
    if info is None:
        if stored:
            raise CheckpointError(f"{path}: optimizer arrays without optimizer information in the header")
        return
    if info.type != kind:
        raise CheckpointError(f"{path}: stored optimizer is {info.type!r}, not {kind!r}")
    entry = checkpoint.registry.find("optimizer", kind)
    lock = checkpoint.header.components.get("optimizer", {}).get(kind)
    if entry is not None:
        check_version(checkpoint.header, "optimizer", kind, entry.plugin.distribution, entry.plugin.version, path)
    if info.state_version != optimizer.state_version:
        written = f"{lock.distribution} {lock.version}" if lock else "another version"
        installed = f"{entry.plugin.distribution} {entry.plugin.version}" if entry else "the installed one"
        raise CheckpointError(f"{path}: optimizer {kind!r}: its state was written by {written} in layout "
                              f"{info.state_version}; {installed} uses layout {optimizer.state_version}")
    wanted = {f"{name}/{slot}": param for name, param in network.params.items() for slot in optimizer.slots}
    if info.iterations and set(stored) != set(wanted):
        missing, extra = sorted(set(wanted) - set(stored)), sorted(set(stored) - set(wanted))
        raise CheckpointError(f"{path}: optimizer state after {info.iterations} updates does not fit the network"
                              + (f"; missing {missing[:3]}" if missing else "") + (f"; unknown {extra[:3]}" if extra
                                                                                    else ""))
    if not info.iterations:
        if stored:
            raise CheckpointError(f"{path}: optimizer state without a single update")
        return
    arrays = {}
    for key, param in wanted.items():
        array = checkpoint.file.array(stored[key])
        if array.dtype != param.dtype or array.shape != param.shape:
            raise CheckpointError(f"{path}: optimizer/{key} is {array.dtype} {array.shape}; its param is "
                                  f"{param.dtype} {param.shape}")
        arrays[key] = array
    optimizer.load_state_arrays(list(network.params), arrays, list(network.params.values()))
    optimizer.iterations = info.iterations


def _streams(checkpoint: Checkpoint, network: Network, *, trained: bool) -> dict[str, np.random.Generator]:
    path, stored = checkpoint.path, checkpoint.header.rng
    unknown = sorted(set(stored) - set(STREAMS))
    if unknown:
        raise CheckpointError(f"{path}: rng.{unknown[0]}: not a stream nnkit keeps ({', '.join(STREAMS)})")
    if trained and set(stored) != set(STREAMS):
        missing = sorted(set(STREAMS) - set(stored))
        raise CheckpointError(f"{path}: rng.{missing[0]} is missing: the run could not go on as it would have")
    rngs = {name: state_from_data(state.model_dump(), f"{path}: rng.{name}") for name, state in stored.items()}
    rngs["network"] = network.rng  # the same stream, already handed to the layers
    return rngs
