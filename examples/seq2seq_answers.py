"""Greedy answers of a trained encoder-decoder on its held-out questions, and their
exact-match accuracy (an answer counts only if every character is right), as the book's
ch. 7-8 eval_seq2seq scores it.

    python examples/seq2seq_answers.py seq2seq.nnk [--show 5]
"""

from __future__ import annotations

import argparse

import nnkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--show", type=int, default=5, help="questions to print with their answers")
    args = parser.parse_args()
    model = nnkit.load(args.checkpoint, grads=False)
    held = model.validation_data
    if held is None or not isinstance(held.x, dict):
        raise SystemExit("the checkpoint's recipe holds out no question-answer data")
    answers = model.decode(held.x)
    right = (answers == held.t).all(axis=1)
    chars = model.spec.inputs["question"].vocabulary
    reverse = bool(getattr(model.spec.data, "reverse_question", False))
    for row in range(min(args.show, len(right))):
        question = "".join(chars[i] for i in held.x["question"][row])
        print(f"{(question[::-1] if reverse else question).strip():>30} = {''.join(chars[i] for i in answers[row])}"
              f"  {'right' if right[row] else 'wrong: ' + ''.join(chars[i] for i in held.t[row])}")
    print(f"exact match: {right.mean():.4f} of {len(right)} held-out questions")


if __name__ == "__main__":
    main()
