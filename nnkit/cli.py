"""The `nnkit` command: a thin layer over `nnkit.Model` and the registry.

Every NnkitError is printed as one line on stderr, with exit status 1; no tracebacks.
Each command imports what it needs when it runs, so that `nnkit --help` and `nnkit
--version` answer in about the time Python takes to import numpy and pydantic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from nnkit.errors import NnkitError


def _writable_folder(path: str) -> None:
    """Fail before training, not after it, when the checkpoint cannot be written."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise NnkitError(f"{path}: cannot write: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise NnkitError(f"{path}: cannot write: no permission in {folder}")


def _train(args: argparse.Namespace) -> int:
    from nnkit.model import Model
    from nnkit.modelfile import read_model_file
    from nnkit.plugins import get_registry
    from nnkit.training.progress import format_record, reporter

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
        for note in model.runner.notes:  # what the resume changes, said before training
            print(note)
        model.runner.notes.clear()
    else:
        model = Model.from_file(args.model, epochs=args.epochs, seed=args.seed, checkpoint_dir=folder)
    progress = reporter("none" if args.quiet else args.progress)
    # The recipe's epochs are a total: a resumed run finishes them.
    model.fit(until=model.spec.train.epochs, callbacks=[progress] if progress else None, verbose=False)
    for note in model.runner.notes:
        print(note)
    result = model.evaluate()
    print(f"final: {format_record(result)}  ({result['samples']} training samples)")
    held_out = model.validation_data
    if held_out is not None:
        held = model.evaluate(held_out.x, held_out.t)
        print(f"validation: {format_record(held)}  ({held['samples']} held-out samples)")
    if args.out:
        model.save(args.out, allow_non_finite=args.allow_non_finite)
        print(f"saved {args.out}" + (" (with non-finite params)" if args.allow_non_finite else ""))
    checkpoints = model.runner.checkpoint_dir
    if checkpoints is not None and checkpoints.is_dir():
        print(f"periodic checkpoints in {checkpoints}/")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from nnkit.api import load
    from nnkit.inference import predict_file

    network = load(args.checkpoint, grads=False).network
    predict_file(network, args.input, args.output, batch_size=args.batch_size, classes=args.classes,
                 fmt=args.format)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from nnkit.data.builtin import FileDataset
    from nnkit.model import Model
    from nnkit.training.progress import format_record

    model = Model.load(args.checkpoint, grads=False)
    if args.data:
        data = FileDataset(FileDataset.Config(path=args.data)).load(np.random.default_rng(0))
        results = {"data": model.evaluate(data.x, data.t, confusion=True)}
    else:
        results = {"training": model.evaluate(confusion=True)}
        held = model.validation_data
        if held is not None:
            results["validation"] = model.evaluate(held.x, held.t, confusion=True)
    if args.json:  # the first result's fields at the top, the validation one nested
        label, first = next(iter(results.items()))
        print(json.dumps({**first, **{k: v for k, v in results.items() if k != label}}))
        return 0
    for label, result in results.items():
        print(f"{label}: {format_record({k: v for k, v in result.items() if k != 'confusion'})}  "
              f"({result['samples']} samples)")
        if result.get("confusion"):
            print(_confusion_table(result["confusion"]))
    return 0


def _confusion_table(counts: list[list[int]]) -> str:
    width = max(len(str(v)) for row in counts for v in row) + 1
    head = "  true\\pred " + "".join(f"{j:>{width}}" for j in range(len(counts)))
    return "\n".join([head, *(f"  {i:>9} " + "".join(f"{v:>{width}}" for v in row) for i, row in enumerate(counts))])


def _validate(args: argparse.Namespace) -> int:
    from nnkit.data.recipe import RecipeData, inputs_like
    from nnkit.modelfile import read_model_file
    from nnkit.network import NetworkPlan
    from nnkit.plugins import get_registry
    from nnkit.training.rng import streams

    registry = get_registry()
    spec = read_model_file(args.model, registry)
    if spec.inputs is None:  # shapes come from the data: make it, as training would
        spec = spec.replace(inputs=inputs_like(RecipeData(spec, registry, args.model, streams(spec.train.seed)).all))
    plan = NetworkPlan(spec, registry, source=args.model)
    plan.check_batch(spec.train.batch_size, "a training step")
    print(f"{args.model}: ok: {plan.describe()}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from nnkit.modelfile import migrate_file
    from nnkit.plugins import get_registry

    old, new = migrate_file(args.model, get_registry(), args.out)
    target = args.out or args.model
    print(f"{target}: format_version {new}" + (f" (was {old})" if old != new else " (already current)"))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from nnkit.checkpoint import inspect, verify
    from nnkit.training.progress import format_record

    info = inspect(args.checkpoint)
    if args.verify:
        info["verified_arrays"] = verify(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: nnkit checkpoint v{info['format_version']} "
          f"(nnkit {info['nnkit_version']}, created {info['created']})")
    print(f"network: {info['nodes_summary']}; {info['param_count']} params")
    progress = info["progress"]
    metrics = format_record(progress["last"] or {})
    print(f"progress: epoch {progress['epoch']}, step {progress['step']}" + (f"; {metrics}" if metrics else ""))
    if info["optimizer"]:
        print(f"optimizer: {info['optimizer']['type']} after {info['optimizer']['iterations']} updates")
    print("plugins: " + ", ".join(f"{t} ({p['distribution']} {p['version']})" for t, p in info["plugins"].items()))
    for a in info["arrays"]:
        print(f"  {a['name']:<40} {a['dtype']:<8} {tuple(a['shape'])}")
    if args.verify:
        print(f"checksums: all {info['verified_arrays']} arrays intact")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from nnkit.model import Model
    from nnkit.plot import plot_boundary, plot_history

    model = Model.load(args.checkpoint, grads=False)
    title = model.spec.name or Path(args.checkpoint).stem
    if args.boundary:
        plot_boundary(model.network, model.data.x, model.data.t, args.out, title=title)
    else:
        plot_history(model.history.records, args.out, title=title)
    print(f"wrote {args.out}")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from nnkit.plugins import get_registry

    plugins = [p.to_dict() for p in get_registry().plugins]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    for p in plugins:
        print(f"{p['name']}  ({p['distribution']} {p['version']})")
        for label in ("layers", "optimizers", "datasets", "metrics", "callbacks"):
            if p[label]:
                print(f"  {label}: {', '.join(p[label])}")
        if p["error"]:
            print(f"  error: {p['error']}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from nnkit.atomic import write_output
    from nnkit.modelfile.schema import model_schema, schema_text
    from nnkit.plugins import get_registry

    if args.kind == "checkpoint":
        from nnkit.checkpoint.header import header_schema

        text = schema_text(header_schema())
    else:
        text = schema_text(model_schema(get_registry()))
    if args.out in (None, "-"):
        sys.stdout.write(text)
        return 0
    write_output(args.out, text.encode("utf-8"), NnkitError)
    print(f"wrote {args.out}")
    return 0


def _positive(text: str) -> int:
    """argparse type: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnkit", description="Train and run declarative NumPy networks.")
    parser.add_argument("--version", action="version", version=f"nnkit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model file (or resume a checkpoint)")
    train.add_argument("model", nargs="?", help="model file (.toml, .json)")
    train.add_argument("--out", help="write the trained checkpoint here")
    train.add_argument("--epochs", type=_positive, help="override the model file's epochs")
    train.add_argument("--seed", type=int, help="override the model file's seed")
    train.add_argument("--resume", metavar="CKPT", help="continue training from a checkpoint")
    train.add_argument("--quiet", action="store_true", help="print only the final result")
    train.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                       help="a live bar (needs nnkit[progress]) or plain lines; auto: a bar on a terminal")
    train.add_argument("--allow-non-finite", action="store_true",
                       help="save even if params hold NaN or inf (with train.nan_guard = false); refused otherwise")
    train.add_argument("--checkpoint-dir", help="where the model file's checkpoint callback writes "
                                                "(default: <out>-checkpoints beside --out)")
    train.set_defaults(run=_train)

    predict = sub.add_parser("predict", help="predict with a checkpoint, streaming in batches")
    predict.add_argument("checkpoint")
    predict.add_argument("--input", required=True, help="inputs, .npy or .csv (one row per sample)")
    predict.add_argument("--output", help="write .npy or .csv here (default: stdout)")
    predict.add_argument("--format", choices=("csv", "json"), default="csv", help="stdout: CSV rows or JSON lines")
    predict.add_argument("--classes", action="store_true", help="output class labels, not probabilities")
    predict.add_argument("--batch-size", type=_positive, default=4096, help="rows per batch (memory stays flat)")
    predict.set_defaults(run=_predict)

    evaluate = sub.add_parser("evaluate", help="loss, metrics and confusion matrix on the model's or any data")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--data", help="a .npz (x, t), .npy or .csv (label in the last column) to score")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(run=_evaluate)

    validate = sub.add_parser("validate", help="check a model file: schema, graph, shapes, param count")
    validate.add_argument("model")
    validate.set_defaults(run=_validate)

    migrate = sub.add_parser("migrate", help="rewrite a model file at the current format_version")
    migrate.add_argument("model")
    migrate.add_argument("--out", help="write here instead of in place")
    migrate.set_defaults(run=_migrate)

    inspect = sub.add_parser("inspect", help="what a checkpoint holds (reads the header only)")
    inspect.add_argument("checkpoint")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument("--verify", action="store_true", help="also check every array's checksum (reads the file)")
    inspect.set_defaults(run=_inspect)

    plot = sub.add_parser("plot", help="draw the loss and metric curves, or the decision regions")
    plot.add_argument("checkpoint")
    plot.add_argument("--out", required=True, help="the picture to write (.png, .svg, .pdf)")
    plot.add_argument("--boundary", action="store_true", help="decision regions of a 2-feature network, data on top")
    plot.set_defaults(run=_plot)

    plugins = sub.add_parser("plugins", help="list plugins and what they provide")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=_plugins)

    schema = sub.add_parser("schema", help="JSON Schema of model files (for editors) or checkpoint headers")
    schema.add_argument("kind", nargs="?", choices=("model", "checkpoint"), default="model")
    schema.add_argument("--out", help="write here (default: stdout); nnkit's copies are in schemas/")
    schema.set_defaults(run=_schema)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    print(f"nnkit: warning: {' '.join(str(message).split())}", file=sys.stderr)


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
    args = build_parser().parse_args(argv)
    if args.command == "train" and not (args.model or args.resume):
        print("nnkit: error: train needs a model file or --resume CKPT", file=sys.stderr)
        return 2
    with warnings.catch_warnings():  # restored on return: callers of main() keep their own
        warnings.showwarning = _show_warning  # one line each, like errors
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        status = int(args.run(args))
        sys.stdout.flush()  # a closed pipe or a full disk shows here, not at the interpreter's exit
        return status
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
        print(f"nnkit: error: {' '.join(str(exc).split())}", file=sys.stderr)
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
