"""How training reports progress: a live bar on a terminal, plain lines elsewhere.

The bar is tqdm's (the extra `nnkit[progress]`): one small, dependency-free, widely used
package that already handles terminal widths, redraw rates, rates and time left; nnkit
writes no terminal code of its own. The bar goes to standard error, as tqdm's convention
is; the full lines with every metric stay on screen above it. Without tqdm, off a
terminal (pipes, CI logs) or on one that reports no size, training prints one plain line
every few epochs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TextIO

from nnkit.errors import NnkitError
from nnkit.training.callbacks import Callback
from nnkit.version import install_hint

if TYPE_CHECKING:
    from nnkit.training.runner import Runner

Mode = Literal["auto", "bar", "lines", "none"]
#: Where plain progress lines go, e.g. `print`.
Log = Callable[[str], None]


class LogLines(Callback):
    """One plain line every `every` epochs (and at the last one)."""

    def __init__(self, log: Log, every: int | None = None) -> None:
        self.log, self.every = log, every

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        if reported(runner, epoch, self.every):
            target = runner.target_epochs
            self.log(f"epoch {epoch:>{len(str(target))}}/{target}  {format_record(record)}")


def reported(runner: Runner, epoch: int, every: int | None = None) -> bool:
    """Whether `epoch` is one that progress reports keep: every `train.log_every` epochs
    (about ten in a run by default) and the last."""
    target = runner.target_epochs
    every = every or runner.spec.train.log_every or max(1, target // 10)
    return epoch % every == 0 or epoch == target


def format_record(record: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "samples") and v is not None)


class ProgressBar(Callback):
    """One tqdm bar for the whole run on standard error — steps done, the epoch, the running
    loss, time left — and, kept above it, a full plain line with every metric for the epochs
    the plain lines would report (as Keras prints them), so no metric is ever cut off."""

    def __init__(self, stream: TextIO | None = None) -> None:
        try:
            from tqdm import tqdm  # the extra nnkit[progress]
        except ImportError:
            raise NnkitError(f"the progress bar needs tqdm: {install_hint('progress')}") from None

        self.tqdm, self.stream = tqdm, stream or sys.stderr
        self.bar: Any = None

    def on_train_begin(self, runner: Runner) -> None:
        total = runner.target_epochs * runner.steps_per_epoch
        self.bar = self.tqdm(total=total, initial=min(runner.state.progress.step, total), file=self.stream,
                             dynamic_ncols=True, unit="step", desc="run", leave=True)

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        position = max(runner.state.progress.position, 1)
        running = runner.state.progress.running
        self.bar.set_description(f"epoch {runner.epoch + 1}/{runner.target_epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss {running.get('loss', loss) / position:.4f}", refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        if reported(runner, epoch):
            target = runner.target_epochs
            self.bar.write(f"epoch {epoch:>{len(str(target))}}/{target}  {format_record(record)}", file=self.stream)

    def on_train_end(self, runner: Runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def terminal_width(stream: TextIO) -> int:
    """The width of the terminal `stream` writes to; 0 when it has none (a pipe, a file, or a
    terminal that reports no size)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (OSError, ValueError, AttributeError):
        return 0


def have_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def reporter(mode: Mode, stream: TextIO | None = None) -> Callback | None:
    """The progress callback for `mode`: "auto" is the bar when standard error is a
    terminal with a size and tqdm is installed, plain lines on standard output otherwise;
    "none" reports nothing."""
    if mode == "none":
        return None
    if mode == "bar" or (mode == "auto" and terminal_width(sys.stderr) > 0 and have_tqdm()):
        return ProgressBar(stream or sys.stderr)
    out = stream or sys.stdout
    return LogLines(lambda line: print(line, file=out, flush=True))
