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

    Each step runs the network again on the answer so far, so any decoder that reads its
    input left to right (recurrent, peeky, attention over the encoder) decodes exactly."""
    if feed not in inputs:
        raise DataError(f"decoding feeds the network input {feed!r}; the inputs are {', '.join(inputs)}")
    n, steps = np.shape(inputs[feed])
    answers = np.empty((n, steps), dtype=np.int64)
    with network.streaming(carry=False):
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            batch = {name: np.asarray(value)[rows] for name, value in inputs.items()}
            current = np.repeat(batch[feed][:, :1], steps, axis=1)  # later columns filled as decoded
            for k in range(steps):
                scores = network.forward({**batch, feed: current})  # (n, T, V)
                answers[rows, k] = scores[:, k].argmax(axis=-1)
                if k + 1 < steps:
                    current[:, k + 1] = answers[rows, k]
    return answers
