"""The `nnkit` commands besides `train`: predict, evaluate, export, validate, migrate, inspect, plot,
plugins, schema. Each imports what it needs when it runs, prints its text unless `--json`
is given, and returns (exit status, result): the result is what `--json` prints inside
the envelope (see `nnkit/cli/__init__.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nnkit.errors import DataError, NnkitError


def predict(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.api import load
    from nnkit.inference import predict_file

    if args.json and args.output in (None, "-"):
        raise NnkitError("predict --json describes the run: write the predictions with --output FILE")
    from nnkit.data.files import Columns

    network = load(args.checkpoint, grads=False).network
    rows = predict_file(network, args.input, args.output, batch_size=args.batch_size, classes=args.classes,
                        fmt=args.format, columns=Columns(header=args.header, features=args.features))
    return 0, {"rows": rows, "output": args.output}


def evaluate(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.model import Model
    from nnkit.training.progress import format_record

    model = Model.load(args.checkpoint, grads=False)
    if args.data and args.data.lower().endswith(".txt"):
        data = _text_data(args.data, model.spec)
        results = {"data": model.evaluate(data.x, data.t)}
    elif args.data:
        data = _file_data(args.data, header=args.header, features=args.features, label=args.label,
                          fitted=model.columns)
        results = {"data": model.evaluate(data.x, data.t, confusion=True)}
    else:
        results = {"training": model.evaluate(confusion=True)}
        held = model.validation_data
        if held is not None:
            results["validation"] = model.evaluate(held.x, held.t, confusion=True)
    if args.json:
        return 0, results
    for label, result in results.items():
        print(f"{label}: {format_record({k: v for k, v in result.items() if k != 'confusion'})}  "
              f"({result['samples']} samples)")
        if result.get("confusion"):
            print(_confusion_table(result["confusion"]))
    return 0, results


def generate(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.generate import as_text, is_encoder_decoder
    from nnkit.model import Model

    model = Model.load(args.checkpoint, grads=False)
    if is_encoder_decoder(model.spec) and args.input is None and args.questions is None:
        raise DataError(f"{args.checkpoint}: an encoder-decoder answers questions: give --input \"16+75\" or "
                        "--questions FILE")
    if args.input is not None or args.questions is not None:  # an encoder-decoder's questions
        questions = [args.input] if args.input is not None else _question_lines(args.questions)
        answers = model.generate(questions)
        if not args.json:
            print("\n".join(answers))
        return 0, {"questions": questions, "answers": answers}
    start = args.start.split()
    words = model.generate(start, length=args.length, greedy=args.greedy, temperature=args.temperature,
                           seed=args.seed, skip=args.skip.replace(",", " ").split())
    if not args.json:
        print(as_text([w for w in start if w != "<eos>"] + words))
    return 0, {"start": start, "words": words}


def _question_lines(path: str) -> list[str]:
    from nnkit.paths import read_utf8

    return [line for line in read_utf8(path, DataError, "questions file", 64 << 20).splitlines() if line.strip()]


def _text_data(path: str, spec: Any) -> Any:
    """Held-out text for a language model, read as its training text was (next-word
    sequences), its words in the model's vocabulary (words it lacks: <unk>)."""
    import numpy as np

    from nnkit.data.text import TextConfig, TextCorpus
    from nnkit.generate import vocabulary_of

    vocabulary = tuple(vocabulary_of(spec))
    options = spec.data.model_dump(include={"length", "eos"}) if getattr(spec.data, "type", None) == "text" else {}
    dataset = TextCorpus(TextConfig(path=path, **options))
    dataset.known = vocabulary
    try:
        return dataset.load(np.random.default_rng(0))
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None


def _file_data(path: str, *, header: bool | None = None, features: tuple[str, ...] | None = None,
               label: str | None = None, fitted: list[str] | None = None) -> Any:
    """The data in a file the user names: .npz with x and t; a .npy, .csv or .parquet table,
    labels last or in the column `label`, features by name or the columns the model was
    `fitted` on (when the file names its columns)."""
    import numpy as np

    from nnkit.data import Data
    from nnkit.data.files import Columns, read_table

    if path.lower().endswith(".npz"):
        from nnkit.data.builtin import FileDataset

        return FileDataset(FileDataset.Config(path=path)).load(np.random.default_rng(0))
    columns = Columns(header=header, features=features, label=label,
                      features_if_named=tuple(fitted) if fitted else None)  # names given win (Columns.indices)
    x, t = read_table(path, columns, with_label=True)
    assert t is not None  # with_label
    return Data(x, t.astype(np.int64) if np.all(t == np.round(t)) else t)


def _confusion_table(counts: list[list[int]]) -> str:
    width = max(len(str(v)) for row in counts for v in row) + 1
    head = "  true\\pred " + "".join(f"{j:>{width}}" for j in range(len(counts)))
    return "\n".join([head, *(f"  {i:>9} " + "".join(f"{v:>{width}}" for v in row) for i, row in enumerate(counts))])


def export(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.interop.weights import export, format_of
    from nnkit.model import Model
    from nnkit.paths import check_output, free_path

    if args.format is None and args.out is None:
        raise NnkitError("export needs --format (onnx or safetensors) or an --out file ending in .onnx or .safetensors")
    fmt = format_of(args.out, args.format) if args.out is not None else args.format
    out = args.out or str(free_path(Path(args.checkpoint).stem, "." + fmt))
    check_output(out, NnkitError, inputs=[args.checkpoint])
    model = Model.load(args.checkpoint, grads=args.grads)
    export(model.network, out, model.registry, fmt=fmt, grads=args.grads)
    if not args.json:
        print(f"wrote {out} ({fmt}{', with grads' if args.grads else ''})")
    return 0, {"wrote": out, "format": fmt, "grads": args.grads}


def validate(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.data.recipe import RecipeData, inputs_like
    from nnkit.modelfile import read_model_file
    from nnkit.network import NetworkPlan
    from nnkit.plugins import get_registry
    from nnkit.training.rng import streams

    registry = get_registry()
    spec = read_model_file(args.model, registry)
    recipe = RecipeData(spec, registry, args.model, streams(spec.train.seed))
    if spec.inputs is None:  # shapes come from the data: make it, as training would
        spec = spec.replace(inputs=inputs_like(recipe.all))
    plan = NetworkPlan(spec, registry, source=args.model)
    plan.check_batch(spec.train.batch_size, "a training step")
    if spec.data is not None and len(recipe.train) < spec.train.batch_size:  # the data it names, as training sees it
        raise NnkitError(f"{args.model}: train.batch_size {spec.train.batch_size} is larger than the "
                         f"{len(recipe.train)} training samples its data gives: no step could run")
    if not args.json:
        print(f"{args.model}: ok: {plan.describe()}")
    return 0, {"model": args.model, "nodes": len(spec.nodes), "params": plan.param_count(),
               "output_shape": list(plan.output_shape), "loss": spec.loss.type if spec.loss else None}


def migrate(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.modelfile import migrate_file
    from nnkit.plugins import get_registry

    old, new = migrate_file(args.model, get_registry(), args.out)
    target = args.out or args.model
    if not args.json:
        print(f"{target}: format_version {new}" + (f" (was {old})" if old != new else " (already current)"))
    return 0, {"file": target, "format_version": new, "was": old}


def inspect(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.checkpoint import inspect, verify
    from nnkit.training.progress import format_record

    info = inspect(args.checkpoint)
    if args.verify:
        info["verified_arrays"] = verify(args.checkpoint)
    if args.json:
        return 0, info
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
    return 0, info


def sweep(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.sweeps import results_table, run_file
    from nnkit.sweeps.engine import stderr_status

    status = None if args.quiet or args.json else stderr_status()
    outcome = run_file(args.sweep, out=args.out, scheduler=args.scheduler, workers=args.workers,
                       storage=args.storage, on_status=status)
    summary = outcome.summary
    if status is not None and sys.stderr.isatty():
        print(file=sys.stderr)
    if not args.json:
        print(results_table(summary))
        if outcome.best is not None:
            print(f"best: trial {outcome.best['number']}, {summary['metric']} {outcome.best['value']:.4g}; "
                  f"saved {outcome.folder / 'best.nnk'}")
    if outcome.interrupted:
        print(f"nnkit: interrupted; run the same command again to continue the study in {outcome.folder}",
              file=sys.stderr)
        return 130, summary
    return 0, {**summary, "folder": str(outcome.folder)}


def plot(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.model import Model
    from nnkit.plot import plot_boundary, plot_history

    if Path(args.checkpoint).is_dir():
        from nnkit.sweeps.plot import plot_sweep

        plot_sweep(args.checkpoint, args.out)
        if not args.json:
            print(f"wrote {args.out}")
        return 0, {"wrote": args.out}
    model = Model.load(args.checkpoint, grads=False)
    title = model.spec.name or Path(args.checkpoint).stem
    if args.attention is not None:
        _plot_attention(model, args.attention, args.out, title)
    elif args.boundary:
        data = _file_data(args.data) if args.data else model.data
        plot_boundary(model.network, data.x, data.t, args.out, title=title)
    else:
        stopping = model.runner.state.progress.callbacks.get("early_stopping", {})
        restored = stopping.get("best_epoch") if stopping.get("stopped_epoch") is not None else None
        plot_history(model.history.records, args.out, title=title, restored_epoch=restored, logy=args.logy)
    if not args.json:
        print(f"wrote {args.out}")
    return 0, {"wrote": args.out}


def _plot_attention(model: Any, question: str, out: str, title: str) -> None:
    """The attention map of an encoder-decoder answering `question`: the greedy answer
    decoded, then the weights its attention layer gave while writing it."""
    import numpy as np

    from nnkit.generate import encode_questions
    from nnkit.plot import plot_attention

    x = encode_questions(model.spec, [question])
    answer = model.decode(x)
    feed = np.concatenate([x["answer_in"][:, :1], answer[:, :-1]], axis=1)  # what the decoder read
    with model.network.streaming(carry=False):
        model.network.forward({**x, "answer_in": feed})
    layers = [layer for layer in model.network.layers.values() if getattr(layer, "attention_weights", None) is not None]
    if not layers:
        raise DataError("--attention: the network has no attention layer (TimeAttention, Attention)")
    weights = np.asarray(layers[0].attention_weights)[0]
    weights = weights if weights.ndim == 2 else weights[None]  # one step's (Attention): one row
    chars = model.spec.inputs["question"].vocabulary
    shown = [chars[i] for i in x["question"][0]]
    if getattr(model.spec.data, "reverse_question", False):  # as the question is written
        shown, weights = shown[::-1], weights[:, ::-1]
    plot_attention(weights, shown, [chars[i] for i in answer[0]][:len(weights)], out, title)


def plugins(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.plugins import get_registry

    plugins = [p.to_dict() for p in get_registry().plugins]
    if args.json:
        return 0, {"plugins": plugins}
    for p in plugins:
        print(f"{p['name']}  ({p['distribution']} {p['version']})")
        for label in ("layers", "optimizers", "datasets", "metrics", "callbacks"):
            if p[label]:
                print(f"  {label}: {', '.join(p[label])}")
        if p["error"]:
            print(f"  error: {p['error']}")
    return 0, {"plugins": plugins}


def schema(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from nnkit.atomic import write_output
    from nnkit.modelfile.schema import model_schema, schema_text
    from nnkit.plugins import get_registry

    if args.kind == "checkpoint":
        from nnkit.checkpoint.header import header_schema

        document = header_schema()
    elif args.kind == "sweep":
        from nnkit.sweeps.spec import sweep_schema

        document = sweep_schema()
    else:
        document = model_schema(get_registry())
    if args.out in (None, "-"):
        if args.json:
            return 0, {"schema": document}
        sys.stdout.write(schema_text(document))
        return 0, {"schema": document}
    write_output(args.out, schema_text(document).encode("utf-8"), NnkitError)
    if not args.json:
        print(f"wrote {args.out}")
    return 0, {"wrote": args.out}
