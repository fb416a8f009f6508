"""How training reports progress: a live bar on a terminal, plain lines elsewhere.

The bar is tqdm's (the extra `nnkit[progress]`): one small, dependency-free, widely used
package that already handles terminal widths, redraw rates, rates and time left; nnkit
writes no terminal code of its own. Without tqdm, or off a terminal (pipes, CI logs),
training prints one plain line every few epochs.
"""

from __future__ import annotations

import sys
import time
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
    """A tqdm bar per epoch: steps done, running loss and metrics, and time left for the
    whole run. Bars stay on screen for the epochs plain lines would report; the rest clear."""

    def __init__(self, stream: TextIO | None = None) -> None:
        try:
            from tqdm import tqdm  # the extra nnkit[progress]
        except ImportError:
            raise NnkitError(f"the progress bar needs tqdm: {install_hint('progress')}") from None

        self.tqdm, self.stream = tqdm, stream or sys.stdout
        self.bar: Any = None  # the current epoch's tqdm bar
        self.started = self.first_step = 0.0

    def on_train_begin(self, runner: Runner) -> None:
        self.started, self.first_step = time.monotonic(), runner.state.progress.step

    def on_epoch_begin(self, runner: Runner, epoch: int) -> None:
        self.bar = self.tqdm(total=runner.steps_per_epoch, desc=f"epoch {epoch}/{runner.target_epochs}",
                             file=self.stream, leave=reported(runner, epoch), dynamic_ncols=True, unit="step")

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        resumed = self.bar is None  # mid-epoch: no bar yet
        if resumed:
            self.on_epoch_begin(runner, runner.epoch + 1)
        self.bar.update(runner.state.progress.position if resumed else 1)
        position = max(runner.state.progress.position, 1)
        running = runner.state.progress.running
        postfix = {k: f"{v / position:.4f}" for k, v in running.items()}
        done = step - self.first_step
        remaining = runner.target_epochs * runner.steps_per_epoch - step
        postfix["run left"] = self.tqdm.format_interval((time.monotonic() - self.started) / done * remaining)
        self.bar.set_postfix(postfix, refresh=False)

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(format_record(record), refresh=True)
            self.bar.close()
            self.bar = None

    def on_train_end(self, runner: Runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def have_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def reporter(mode: Mode, stream: TextIO | None = None) -> Callback | None:
    """The progress callback for `mode`: "auto" is a bar on a terminal with tqdm installed,
    plain lines otherwise; "none" reports nothing."""
    stream = stream or sys.stdout
    if mode == "none":
        return None
    if mode == "bar" or (mode == "auto" and stream.isatty() and have_tqdm()):
        return ProgressBar(stream)
    return LogLines(lambda line: print(line, file=stream, flush=True))
