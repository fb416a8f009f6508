"""`nnkit train`: train a model file or resume a checkpoint, and never lose the result: a
default output that never overwrites, and a first Ctrl-C that stops after the step under
way and saves a resumable checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nnkit.errors import NnkitError
from nnkit.paths import free_path


def _writable_folder(path: str) -> None:
    """Fail before training, not after it, when the checkpoint cannot be written."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise NnkitError(f"{path}: cannot write: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise NnkitError(f"{path}: cannot write: no permission in {folder}")


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.model import Model
    from nnkit.modelfile import read_model_file
    from nnkit.plugins import get_registry
    from nnkit.training.progress import format_record, reporter

    say = (lambda line: None) if args.json else print  # --json: one object at the end, nothing else
    if args.out is None and not args.no_save:  # training is never lost: a default that never overwrites
        args.out = str(free_path(Path(args.resume or args.model).stem, ".nnk"))
    if args.out:
        _writable_folder(args.out)
    folder = args.checkpoint_dir
    if folder is None and args.out:
        folder = str(Path(args.out).with_name(Path(args.out).stem + "-checkpoints"))
    if args.resume:
        if args.seed is not None:
            raise NnkitError("--seed cannot change a resumed run: its data and shuffling come from the stored seed")
        spec = read_model_file(args.model, get_registry()) if args.model else None
        model = Model.load(args.resume, spec=spec, epochs=args.epochs, checkpoint_dir=folder, spec_source=args.model)
    else:
        model = Model.from_file(args.model, epochs=args.epochs, seed=args.seed, checkpoint_dir=folder)
    notes = list(model.runner.notes)  # what a resume changes, said before training
    for note in notes:
        say(note)
    model.runner.notes.clear()
    progress = reporter("none" if args.quiet or args.json else args.progress)
    # The recipe's epochs are a total: a resumed run finishes them.
    with _interruptible(model) as interrupted:
        model.fit(until=model.spec.train.epochs, callbacks=[progress] if progress else None, verbose=False)
    if interrupted:
        return _save_interrupted(model, args.out)
    for note in model.runner.notes:
        say(note)
    result: dict[str, Any] = {"final": model.evaluate(), "notes": [*notes, *model.runner.notes]}
    say(f"final: {format_record(result['final'])}  ({result['final']['samples']} training samples)")
    held_out = model.validation_data
    if held_out is not None:
        result["validation"] = held = model.evaluate(held_out.x, held_out.t)
        say(f"validation: {format_record(held)}  ({held['samples']} held-out samples)")
    if args.out:
        model.save(args.out, allow_non_finite=args.allow_non_finite)
        say(f"saved {args.out}" + (" (with non-finite params)" if args.allow_non_finite else ""))
    result.update(saved=args.out, epochs=model.epoch)
    checkpoints = model.runner.checkpoint_dir
    if checkpoints is not None and checkpoints.is_dir():
        say(f"periodic checkpoints in {checkpoints}/")
        result["checkpoints"] = str(checkpoints)
    return 0, result


@contextlib.contextmanager
def _interruptible(model: Any) -> Iterator[list[bool]]:
    """The first Ctrl-C asks training to stop after the step under way (the state stays
    whole, so it can be saved and resumed); a second one stops at once."""
    interrupted: list[bool] = []

    def stop(signum: int, frame: object) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        model.runner.stop_training = True
        print("\nnnkit: stopping after this step (Ctrl-C again to quit without saving)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _save_interrupted(model: Any, out: str | None) -> tuple[int, dict[str, Any]]:
    progress = model.runner.state.progress
    where = f"epoch {progress.epoch + (1 if progress.position else 0)}, step {progress.step}"
    result = {"interrupted": True, "epochs": progress.epoch, "step": progress.step, "saved": out}
    if out is None:
        print(f"nnkit: interrupted at {where}; nothing saved (--no-save)", file=sys.stderr)
        return 130, result
    model.save(out, allow_non_finite=True)
    print(f"nnkit: interrupted at {where}; saved {out}: resume with nnkit train --resume {out}", file=sys.stderr)
    return 130, result
