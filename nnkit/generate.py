"""Text from a language model, one word at a time (the book's `generate`, ch. 7).

The prefix goes through the network once; then each step feeds the word just chosen as a
sequence of one, every recurrent layer carrying its state from step to step — the prefix
is never run again. Words come in and go out through the vocabulary stored with the
network's input (a word corpus puts it there when the model is trained).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nnkit.errors import DataError
from nnkit.names import did_you_mean
from nnkit.network import Network
from nnkit.normalise import source_of
from nnkit.spec import Spec

EOS = "<eos>"


def vocabulary_of(spec: Spec) -> list[str]:
    """The words of the spec's one integer input, position = id."""
    specs = spec.inputs or {}
    words = [spec.vocabulary for spec in specs.values() if spec.vocabulary]
    if len(specs) != 1 or not words:
        raise DataError("the network knows no words: text is for a network of one input of word ids trained on a "
                        "word corpus (the text or corpus dataset), whose vocabulary it keeps")
    return list(words[0])


def generate(network: Network, vocabulary: Sequence[str], start: Sequence[str], *, length: int,
             rng: np.random.Generator, greedy: bool = False, temperature: float = 1.0,
             skip: Sequence[str] = ()) -> list[str]:
    """`length` words following the words `start`: each the most probable (`greedy`) or
    drawn from the model's distribution sharpened (temperature < 1) or flattened (> 1),
    never one of `skip`. `vocabulary`: the input's words, position = id (`vocabulary_of`).
    Draws come from `rng` only."""
    ids = {word: i for i, word in enumerate(vocabulary)}
    for word in [*start, *skip]:
        if word not in ids:
            raise DataError(f"{word!r} is not in the model's vocabulary of {len(ids)} words"
                            f"{did_you_mean(word, ids)}")
    if not start:
        raise DataError("give at least one word to start from")
    if length < 0 or not temperature > 0:
        raise DataError("length must be at least 0 and temperature above 0")
    if network.loss_layer is None or not any(layer.can_carry_state for layer in network.layers.values()):
        raise DataError("generating text needs a recurrent language model (TimeRNN, TimeLSTM or TimeGRU layers)")
    banned = np.array(sorted({ids[w] for w in skip}), dtype=np.int64)
    words: list[str] = []
    x = np.array([[ids[w] for w in start]], dtype=np.int64)  # (1, T): the prefix, once
    with network.streaming(carry=True):
        for _ in range(length):
            scores = network.forward(x, any_length=True)  # (1, T, V)
            p = np.asarray(network.loss_layer.predict(scores[:, -1]), dtype=np.float64).reshape(-1)
            if p.size < len(vocabulary):
                raise DataError(f"the network scores {p.size} words per step; its vocabulary has {len(vocabulary)}")
            chosen = _choose(p[:len(vocabulary)], banned, rng, greedy, temperature)  # ids past it name no word
            words.append(vocabulary[chosen])
            x = np.array([[chosen]], dtype=np.int64)
    return words


def _choose(p: np.ndarray, banned: np.ndarray, rng: np.random.Generator, greedy: bool, temperature: float) -> int:
    """An id from probabilities p (V,), never a banned one."""
    logits = np.log(np.maximum(p, np.finfo(np.float64).tiny)) / temperature
    logits[banned] = -np.inf
    if greedy:
        return int(np.argmax(logits))
    weights = np.exp(logits - logits.max())
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def as_text(words: Sequence[str]) -> str:
    """Words as the book prints them: spaces between, a sentence per line, each <eos> a '.'."""
    lines: list[str] = []
    line: list[str] = []
    for word in words:
        if word == EOS:
            lines.append(" ".join(line) + ".")
            line = []
        else:
            line.append(word)
    return "\n".join([*lines, " ".join(line)] if line else lines)


def decode_greedy(network: Network, inputs: Mapping[str, np.ndarray], *, feed: str = "answer_in",
                  batch_size: int = 4096) -> np.ndarray:
    """Greedy answers of an encoder-decoder, as the book's `generate(xs, start_id, size)`:
    the decoder input `feed` (N, T) gives only its first column, the start symbol; each
    step's most probable symbol is fed back as the next step's input. Returns (N, T) ids.

    The nodes that do not depend on `feed` (the encoder) run once; the ones that do run
    again at each step on the answer so far, so any decoder that reads its input left to
    right (recurrent, peeky, attention over the encoder) decodes exactly."""
    if feed not in inputs:
        raise DataError(f"decoding feeds the network input {feed!r}; the inputs are {', '.join(inputs)}")
    decoder = _depending_on(network, feed)
    n, steps = np.shape(inputs[feed])
    answers = np.empty((n, steps), dtype=np.int64)
    with network.streaming(carry=False):
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            batch = {name: np.asarray(value)[rows] for name, value in inputs.items()}
            current = np.repeat(batch[feed][:, :1], steps, axis=1)  # later columns filled as decoded
            encoded: dict[str, np.ndarray] = {}
            for k in range(steps):
                values = network.run({**batch, feed: current}, reuse=encoded)
                if k == 0:  # the encoder's outputs (and ports), for every later step
                    encoded = {key: v for key, v in values.items()
                               if source_of(key) in network.layers and source_of(key) not in decoder}
                answers[rows, k] = values[network.outputs[0]][:, k].argmax(axis=-1)
                if k + 1 < steps:
                    current[:, k + 1] = answers[rows, k]
    return answers


def _depending_on(network: Network, name: str) -> set[str]:
    """The nodes whose output depends on the network input `name`."""
    found: set[str] = set()
    for node in network.spec.order:
        if any(source_of(i) in found or i == name for i in node.inputs):
            found.add(node.name)
    return found


def is_encoder_decoder(spec: Spec) -> bool:
    """Whether the spec reads a question and writes an answer (the sequence_text dataset's inputs)."""
    return set(spec.inputs or {}) == {"question", "answer_in"}


def encode_questions(spec: Spec, questions: Sequence[str]) -> dict[str, np.ndarray]:
    """Questions written as text as an encoder-decoder's inputs: each padded with spaces to
    the question width (and reversed if it was trained so), the answer to be decoded from
    the start symbol `_`. {"question": (N, Tq), "answer_in": (N, Ta)} ids."""
    if not is_encoder_decoder(spec):
        raise DataError("questions are for an encoder-decoder trained on question and answer_in (sequence_text)")
    assert spec.inputs is not None
    ids = {c: i for i, c in enumerate(spec.inputs["question"].vocabulary or [])}
    width, length = spec.inputs["question"].shape[0], spec.inputs["answer_in"].shape[0]
    if "_" not in ids or " " not in ids:
        raise DataError("the network's characters lack the start symbol '_' or the padding ' '")
    rows = []
    for question in questions:
        unknown = sorted(set(question) - set(ids))
        if unknown or len(question) > width:
            reason = f"{unknown[0]!r} is not among the model's characters" if unknown else f"over {width} characters"
            raise DataError(f"question {question!r}: {reason}")
        rows.append([ids[c] for c in question.ljust(width)])
    x = np.array(rows, dtype=np.int64).reshape(len(rows), width)
    if getattr(spec.data, "reverse_question", False):
        x = x[:, ::-1].copy()
    return {"question": x, "answer_in": np.full((len(rows), length), ids["_"], dtype=np.int64)}


def answer(network: Network, spec: Spec, questions: Sequence[str]) -> list[str]:
    """Greedy answers of an encoder-decoder to questions written as text, the padding stripped."""
    assert spec.inputs is not None
    chars = spec.inputs["question"].vocabulary or []
    answers = decode_greedy(network, encode_questions(spec, questions))
    return ["".join(chars[i] for i in row).strip() for row in answers]
