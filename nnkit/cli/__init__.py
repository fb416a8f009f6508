"""The `nnkit` command: a thin layer over `nnkit.Model` and the registry.

Every NnkitError is printed as one line on stderr, with exit status 1; no tracebacks.
Each command imports what it needs when it runs, so that `nnkit --help` and `nnkit
--version` answer in about the time Python takes to import numpy and pydantic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from nnkit.cli import commands
from nnkit.cli import train as train_command
from nnkit.errors import NnkitError


def _whole(least: int) -> Callable[[str], int]:
    """argparse type: a whole number ≥ `least`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value
    return parse


_count, _positive = _whole(0), _whole(1)


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0 and finite, not {text}")
    return value


COMMANDS = ("train", "predict", "evaluate", "generate", "export", "sweep", "validate", "migrate", "inspect", "plot",
            "plugins", "schema")
EXAMPLES = """examples:
  nnkit train examples/spiral.toml -o spiral.nnk       train, save the checkpoint
  nnkit train --resume spiral.nnk --epochs 400         train on to 400 epochs in all
  nnkit predict spiral.nnk --input x.npy --output y.npy
  nnkit evaluate spiral.nnk                            loss, metrics, confusion matrix
  nnkit export spiral.nnk --format onnx -o spiral.onnx for ONNX Runtime
  nnkit generate ch6.nnk --start "the" --length 30   text from a language model
  nnkit COMMAND --help                                 what a command takes"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnkit", description="Train and run declarative NumPy networks.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nnkit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, example: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--json", action="store_true",
                            help='print one JSON object: {"command", "ok": true, "result"} (errors: "ok": false)')
        return parser

    train = command("train", "train a model file (or resume a checkpoint)",
                    "nnkit train examples/spiral.toml -o spiral.nnk")
    train.add_argument("model", nargs="?", help="the model file (.toml, .json, .yaml); optional with --resume")
    train.add_argument("--out", "-o", help="write the trained checkpoint here (default: <model file stem>.nnk in "
                                           "this folder, never over an existing file: -2, -3 … are added)")
    train.add_argument("--no-save", action="store_true", help="keep nothing when training ends")
    train.add_argument("--epochs", type=_positive, help="override the model file's epochs")
    train.add_argument("--seed", type=int, help="override the model file's seed")
    train.add_argument("--resume", metavar="CKPT", help="continue training from a checkpoint")
    train.add_argument("--quiet", "-q", action="store_true", help="print only the final result")
    train.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                       help="a live bar (needs nnkit[progress]) or plain lines; auto: a bar on a terminal")
    train.add_argument("--allow-non-finite", action="store_true",
                       help="save even if params hold NaN or inf (with train.nan_guard = false); refused otherwise")
    train.add_argument("--checkpoint-dir", help="where the model file's checkpoint callback writes "
                                                "(default: <out>-checkpoints beside --out)")
    train.set_defaults(run=train_command.run)

    predict = command("predict", "predict with a checkpoint, streaming in batches",
                      "nnkit predict spiral.nnk --input x.npy --output y.npy")
    predict.add_argument("checkpoint", help="a checkpoint written by nnkit train")
    predict.add_argument("--input", required=True, help="inputs, one row per sample: .npy, .csv (a header row is "
                                                        "detected), .parquet, or - for CSV on standard input")
    predict.add_argument("--output", help="write .npy or .csv here (default, or -: standard output)")
    _column_options(predict, label=False)
    predict.add_argument("--format", choices=("csv", "json"), default="csv", help="stdout: CSV rows or JSON lines")
    predict.add_argument("--classes", action="store_true", help="output class labels, not probabilities")
    predict.add_argument("--batch-size", type=_positive, default=4096, help="rows per batch (memory stays flat)")
    predict.set_defaults(run=commands.predict)

    evaluate = command("evaluate", "loss, metrics and confusion matrix on the model's or any data",
                       "nnkit evaluate spiral.nnk --data held-out.npz")
    evaluate.add_argument("checkpoint", help="a checkpoint written by nnkit train")
    evaluate.add_argument("--data", help="a .npz (x, t), or a .npy, .csv or .parquet table (label in the last "
                                         "column, or --label) to score; - for CSV on standard input")
    _column_options(evaluate, label=True)
    evaluate.set_defaults(run=commands.evaluate)

    generate = command("generate", "write text with a language model, a word at a time, its state carried",
                       'nnkit generate ch6.nnk --start "the" --length 30 --skip "N <unk>"')
    generate.add_argument("checkpoint", help="a language model trained on a word corpus (its vocabulary is stored)")
    generate.add_argument("--start", default="<eos>", help="the words to go on from (default: <eos>, a sentence's "
                                                          "start)")
    generate.add_argument("--length", type=_count, default=100, help="words to write (default 100)")
    how = generate.add_mutually_exclusive_group()
    how.add_argument("--greedy", action="store_true", help="always the most probable word")
    how.add_argument("--temperature", type=_positive_float, default=1.0,
                     help="draw from the model's distribution sharpened (< 1) or flattened (> 1); default 1")
    generate.add_argument("--seed", type=int, default=0, help="seeds the draws (default 0: the same text each run)")
    generate.add_argument("--input", metavar="QUESTION", help='an encoder-decoder\'s question, e.g. "16+75": '
                          "its greedy answer is printed")
    generate.add_argument("--questions", metavar="FILE", help="a file of such questions, one per line")
    generate.add_argument("--skip", default="", help="words never to write, separated by spaces or commas, "
                                                    'e.g. "N,<unk>"')
    generate.set_defaults(run=commands.generate)

    export = command("export", "write a checkpoint for other tools: an ONNX graph or a safetensors file",
                     "nnkit export spiral.nnk --format onnx --out spiral.onnx")
    export.add_argument("checkpoint", help="a checkpoint written by nnkit train")
    export.add_argument("--format", choices=("onnx", "safetensors"),
                        help="onnx: the inference graph (needs nnkit[onnx]); safetensors: the params by name (needs "
                             "nnkit[safetensors]); default: from --out's suffix")
    export.add_argument("--out", "-o", help="the file to write (replaced if it exists; default: <checkpoint stem>"
                                            ".onnx or .safetensors in this folder, never over an existing file)")
    export.add_argument("--grads", action="store_true", help="safetensors: the grads too, as <name>.grad")
    export.set_defaults(run=commands.export)

    sweep = command("sweep", "search a model file's settings with Optuna, trials on a Dask cluster",
                    "nnkit sweep examples/spiral-sweep.toml --workers 2")
    sweep.add_argument("sweep", help="the sweep file (.toml, .json, .yaml): base model file, space, metric, trials")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786 "
                                                             "(default: a local cluster of worker processes)")
    sweep.add_argument("--workers", type=_positive, help="local worker processes (default: one per core)")
    sweep.add_argument("--storage", metavar="URL", help="the Optuna study's storage, e.g. postgresql://… "
                                                       "(default: SQLite in the sweep's folder)")
    sweep.add_argument("--out", "-o", help="the sweep's folder: study, trials, best.nnk, results.json (default: "
                                           "<sweep file stem>.sweep here); running again continues the study")
    sweep.add_argument("--quiet", "-q", action="store_true", help="no live status line")
    sweep.set_defaults(run=commands.sweep)

    validate = command("validate", "check a model file: schema, graph, shapes, param count",
                       "nnkit validate examples/spiral.toml")
    validate.add_argument("model", help="the model file to check")
    validate.set_defaults(run=commands.validate)

    migrate = command("migrate", "rewrite a model file at the current format_version", "nnkit migrate old.toml")
    migrate.add_argument("model", help="the model file to upgrade (in place unless --out)")
    migrate.add_argument("--out", help="write here instead of in place")
    migrate.set_defaults(run=commands.migrate)

    inspect = command("inspect", "what a checkpoint holds (reads the header only)", "nnkit inspect spiral.nnk --verify")
    inspect.add_argument("checkpoint", help="the checkpoint to describe")
    inspect.add_argument("--verify", action="store_true", help="also check every array's checksum (reads the file)")
    inspect.set_defaults(run=commands.inspect)

    plot = command("plot", "draw the loss and metric curves, or the decision regions",
                   "nnkit plot spiral.nnk --boundary --out regions.png")
    plot.add_argument("checkpoint", help="a checkpoint written by nnkit train, or a sweep's folder (metric vs "
                                         "each setting, and the optimisation history)")
    plot.add_argument("--out", required=True, help="the picture to write (.png, .svg, .pdf)")
    plot.add_argument("--boundary", action="store_true", help="decision regions of a 2-feature network, data on top")
    plot.add_argument("--data", help="with --boundary: the points to draw (.npz with x and t; .npy or .csv, labels "
                                     "last); default: the data the recipe names")
    plot.add_argument("--logy", action="store_true", help="the loss on a logarithmic scale")
    plot.add_argument("--attention", metavar="QUESTION", help="the attention map of an encoder-decoder answering "
                      'QUESTION, e.g. "september 27, 1994" (the book\'s ch. 8 figure)')
    plot.set_defaults(run=commands.plot)

    plugins = command("plugins", "list plugins and what they provide", "nnkit plugins --json")
    plugins.set_defaults(run=commands.plugins)

    schema = command("schema", "JSON Schema of model files (for editors), sweep files or checkpoint headers",
                     "nnkit schema --out model.schema.json")
    schema.add_argument("kind", nargs="?", choices=("model", "sweep", "checkpoint"), default="model",
                        help="model files (default), sweep files or checkpoint headers")
    schema.add_argument("--out", help="write here (default: stdout); nnkit's copies are in schemas/")
    schema.set_defaults(run=commands.schema)
    return parser


def _names(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated column names."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("name at least one column")
    return names


def _column_options(parser: argparse.ArgumentParser, *, label: bool) -> None:
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                        help="whether a CSV's first line names its columns (default: detected)")
    parser.add_argument("--features", type=_names, metavar="A,B,…",
                        help="the feature columns by name, in the network's order (default: the columns the model was "
                             "fitted on, if it knows them, else every column" + (" but the label)" if label else ")"))
    if label:
        parser.add_argument("--label", metavar="NAME", help="the target column by name (default: the last column)")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    print(f"nnkit: warning: {' '.join(str(message).split())}", file=sys.stderr)


def strict_json(value: Any) -> str:
    """Compact JSON that any strict parser reads: NaN and ±inf become null."""
    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def error_fields(exc: Exception, message: str) -> dict[str, Any]:
    """An error as JSON: its kind, message, and the file, line and column it names."""
    where = re.match(r"^(?P<file>[^:\s][^:]*?)(?::(?P<line>\d+):(?P<column>\d+))?: ", message)
    return {"type": type(exc).__name__, "message": message,
            "file": where["file"] if where else None,
            "line": int(where["line"]) if where and where["line"] else None,
            "column": int(where["column"]) if where and where["column"] else None}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit cannot fail
    again on the stream that already failed."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _version() -> str:
    from nnkit.version import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show "→" gets "\u2192", not a crash
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser.print_help()
        return 0
    if not argv[0].startswith("-") and argv[0] not in COMMANDS:
        from nnkit.names import did_you_mean

        print(f"nnkit: error: unknown command {argv[0]!r}{did_you_mean(argv[0], COMMANDS)} "
              f"(commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    if args.command == "train" and not (args.model or args.resume):
        print("nnkit: error: train needs a model file or --resume CKPT", file=sys.stderr)
        return 2
    with warnings.catch_warnings():  # restored on return: callers of main() keep their own
        warnings.showwarning = _show_warning  # one line each, like errors
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        status, result = args.run(args)
        if args.json:
            print(strict_json({"command": args.command, "ok": status == 0, "result": result}))
        sys.stdout.flush()  # a closed pipe or a full disk shows here, not at the interpreter's exit
        return int(status)
    except BrokenPipeError:  # `nnkit … | head`: the reader has what it wanted
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a process a closed pipe ended
    except OSError as exc:
        if exc.filename is None:  # writing to standard output or error failed (a full disk, a closed stream)
            _silence_stdout()
            print(f"nnkit: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
            return 1
        raise
    except NnkitError as exc:
        message = " ".join(str(exc).split())
        if args.json:
            print(strict_json({"command": args.command, "ok": False, "error": error_fields(exc, message)}))
        else:
            print(f"nnkit: error: {message}", file=sys.stderr)
        return 1
    except MemoryError:
        print("nnkit: error: out of memory: lower the batch size or the network's size (see NNKIT_MAX_PARAMS and "
              "NNKIT_MAX_ACTIVATION_BYTES)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
