"""The `nnkit` command: a thin layer over `nnkit.Runner` and the registry.

Every NnkitError is printed as one line on stderr, with exit status 1; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnkit.arrays import read_array, write_array
from nnkit.checkpoint import inspect
from nnkit.errors import NnkitError
from nnkit.modelfile import migrate_file, read_model_file
from nnkit.plugins import get_registry
from nnkit.runner import Runner, describe_network, with_overrides
from nnkit.schema import checkpoint_header_schema, model_schema, schema_text
from nnkit.version import __version__


def _metrics(result: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("samples", "epoch"))


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        spec = with_overrides(read_model_file(args.model), seed=args.seed) if args.model else None
        runner = Runner.from_checkpoint(args.resume, epochs=args.epochs, spec=spec)
    else:
        runner = Runner.from_file(args.model, epochs=args.epochs, seed=args.seed)
    runner.fit(log=None if args.quiet else print)
    result = runner.evaluate()
    print(f"final: {_metrics(result)}  ({result['samples']} training samples)")
    if args.out:
        runner.save(args.out)
        print(f"saved {args.out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    runner = Runner.from_checkpoint(args.checkpoint)
    y = runner.predict(read_array(args.input))
    if args.classes:
        y = y.argmax(axis=-1) if y.ndim >= 2 and y.shape[-1] >= 2 else (y > 0.5).astype(np.int64)
    write_array(args.output, y)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    result = Runner.from_checkpoint(args.checkpoint).evaluate()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{_metrics(result)}  ({result['samples']} samples)")
    return 0


def _validate(args: argparse.Namespace) -> int:
    spec = read_model_file(args.model)
    summary = describe_network(spec, source=args.model)
    print(f"{args.model}: ok: {summary}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    old, new = migrate_file(args.model, args.out)
    target = args.out or args.model
    print(f"{target}: format_version {new}" + (f" (was {old})" if old != new else " (already current)"))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    info = inspect(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: nnkit checkpoint v{info['format_version']} "
          f"(nnkit {info['nnkit_version']}, created {info['created']})")
    print(f"network: {info['nodes_summary']}; {info['param_count']} params")
    progress = info["progress"]
    last = progress["last"] or {}
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch" and isinstance(v, float))
    print(f"progress: epoch {progress['epoch']}, step {progress['step']}" + (f"; {metrics}" if metrics else ""))
    if info["optimizer"]:
        print(f"optimizer: {info['optimizer']['type']} after {info['optimizer']['iterations']} updates")
    print("plugins: " + ", ".join(f"{t} ({p['distribution']} {p['version']})" for t, p in info["plugins"].items()))
    for a in info["arrays"]:
        print(f"  {a['name']:<40} {a['dtype']:<8} {tuple(a['shape'])}")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    plugins = [p.to_dict() for p in get_registry().plugins]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    for p in plugins:
        print(f"{p['name']}  ({p['distribution']} {p['version']})")
        for label in ("layers", "optimizers", "datasets", "metrics"):
            if p[label]:
                print(f"  {label}: {', '.join(p[label])}")
        if p["error"]:
            print(f"  error: {p['error']}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.kind == "checkpoint":
        text = schema_text(checkpoint_header_schema())
    else:
        text = schema_text(model_schema(get_registry()))
    if args.out in (None, "-"):
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text)
    except OSError as exc:
        raise NnkitError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnkit", description="Train and run declarative NumPy networks.")
    parser.add_argument("--version", action="version", version=f"nnkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model file (or resume a checkpoint)")
    train.add_argument("model", nargs="?", help="model file (.toml, .json)")
    train.add_argument("--out", help="write the trained checkpoint here")
    train.add_argument("--epochs", type=int, help="override the model file's epochs")
    train.add_argument("--seed", type=int, help="override the model file's seed")
    train.add_argument("--resume", metavar="CKPT", help="continue training from a checkpoint")
    train.add_argument("--quiet", action="store_true", help="print only the final result")
    train.set_defaults(run=_train)

    predict = sub.add_parser("predict", help="predict with a checkpoint")
    predict.add_argument("checkpoint")
    predict.add_argument("--input", required=True, help="inputs, .npy or .csv (one row per sample)")
    predict.add_argument("--output", help="write .npy or .csv here (default: CSV on stdout)")
    predict.add_argument("--classes", action="store_true", help="output class labels, not probabilities")
    predict.set_defaults(run=_predict)

    evaluate = sub.add_parser("evaluate", help="loss and accuracy on the model file's dataset")
    evaluate.add_argument("checkpoint")
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
    inspect.set_defaults(run=_inspect)

    plugins = sub.add_parser("plugins", help="list plugins and what they provide")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=_plugins)

    schema = sub.add_parser("schema", help="JSON Schema of model files (for editors) or checkpoint headers")
    schema.add_argument("kind", nargs="?", choices=("model", "checkpoint"), default="model")
    schema.add_argument("--out", help="write here (default: stdout); nnkit's copies are in schemas/")
    schema.set_defaults(run=_schema)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # type: ignore[no-untyped-def]
    print(f"nnkit: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning  # one line each, like errors
    if args.command == "train" and not (args.model or args.resume):
        print("nnkit: error: train needs a model file or --resume CKPT", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except NnkitError as exc:
        print(f"nnkit: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
