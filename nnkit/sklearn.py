"""scikit-learn estimators: `NNKitClassifier` and `NNKitRegressor` (the extra `nnkit[sklearn]`).

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), NNKitClassifier(hidden_units=(64,), epochs=50))
    clf.fit(X, y).score(X_test, y_test)

Each is built from a model template: a model file's path or its content as a dict, or
by default a multi-layer perceptron (`hidden_units` wide, ReLU, He init). At `fit` the
input width comes from X and the output node's `units` (the node the loss reads) from y:
the number of classes, or of regression targets. Hyperparameters are constructor
arguments (None = the template's), so `clone`, `get_params`, `GridSearchCV` and
`Pipeline` work as with any estimator. `fit` always starts afresh from the seed, as
scikit-learn's contract says; the fitted `nnkit.Model` is `model_`.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.version import install_hint

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(f"nnkit.sklearn needs scikit-learn >= 1.6: {install_hint('sklearn')}") from exc

from nnkit.errors import NnkitError
from nnkit.model import Model

FLOATS = (np.float64, np.float32)


class _NNKitEstimator(BaseEstimator):
    """What the classifier and the regressor share: the template, the recipe, fitting."""

    _loss = "SoftmaxWithLoss"

    def __init__(self, model: str | Path | Mapping[str, Any] | None = None, *, hidden_units: tuple[int, ...] = (64,),
                 epochs: int | None = None, batch_size: int | None = None, optimizer: str | None = None,
                 lr: float | None = None, weight_decay: float | None = None, seed: int = 0,
                 verbose: bool = False) -> None:
        self.model = model
        self.hidden_units = hidden_units
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.verbose = verbose

    def _template(self) -> dict[str, Any]:
        """The model template as plain data (a model file's content)."""
        if self.model is None:
            nodes = [n for h in self.hidden_units for n in ({"type": "Affine", "units": int(h), "init": "he"},
                                                            {"type": "ReLU"})]
            return {"nodes": [*nodes, {"name": "output", "type": "Affine", "units": 1}], "loss": {"type": self._loss},
                    "optimizer": {"type": "Adam", "lr": 0.01}, "train": {"epochs": 100, "batch_size": 32}}
        if isinstance(self.model, Mapping):
            return copy.deepcopy(dict(self.model))
        if isinstance(self.model, (str, Path)):
            from nnkit.modelfile.migrations import upgrade
            from nnkit.modelfile.parse import format_of, parse_text, read_text

            path = Path(self.model)
            return upgrade(parse_text(read_text(path), format_of(path), str(path)), str(path))
        raise ValueError(f"model must be a model file's path or a dict, not {type(self.model).__name__}")

    def _recipe(self, n_features: int, n_outputs: int, n_samples: int) -> dict[str, Any]:
        data = self._template()
        validation = data.get("validation")
        for section in ("data", "validation", "inputs"):  # the data come from fit
            data.pop(section, None)
        if isinstance(validation, dict) and "split" in validation:
            data["validation"] = {"split": validation["split"]}  # held out of X at fit
        data["inputs"] = {"x": {"shape": [n_features]}}
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, dict) for n in nodes):
            raise ValueError("the model template needs a list of nodes")
        loss = data.get("loss") if isinstance(data.get("loss"), dict) else None
        outputs = data.get("outputs")
        feeding = (loss or {}).get("inputs") or outputs or [nodes[-1].get("name")]
        output = next((n for n in nodes if n.get("name") == feeding[0]), nodes[-1])
        if "units" not in output and output.get("type") not in ("Affine", "MatMul"):
            raise ValueError(f"the template's output node {output.get('name') or output.get('type')!r} has no units "
                             "for the estimator to set from y")
        output["units"] = n_outputs
        train = dict(data.get("train") or {})
        for key, count in (("epochs", self.epochs), ("batch_size", self.batch_size)):
            if count is not None:
                train[key] = count
        train["batch_size"] = min(int(train.get("batch_size", 32)), n_samples)  # small data: one full batch
        train["seed"] = self.seed
        data["train"] = train
        optimizer = dict(data.get("optimizer") or {"type": "SGD"})
        if self.optimizer is not None and self.optimizer != optimizer.get("type"):
            optimizer = {"type": self.optimizer}
        for key, value in (("lr", self.lr), ("weight_decay", self.weight_decay)):
            if value is not None:
                optimizer[key] = value
        data["optimizer"] = optimizer
        return data

    def _fit_model(self, X: np.ndarray, targets: np.ndarray, n_outputs: int) -> None:
        try:
            model = Model.from_spec(self._recipe(X.shape[1], n_outputs, len(X)), source=type(self).__name__)
            split = model.spec.validation.split if model.spec.validation is not None else None
            model.fit(np.ascontiguousarray(X, dtype=np.float64), targets, validation_split=split, verbose=self.verbose)
        except NnkitError as exc:
            raise ValueError(str(exc)) from None
        self.model_ = model

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=FLOATS)
        return self.model_.predict(np.ascontiguousarray(X, dtype=np.float64))

    # Fitted models pickle as an nnkit checkpoint's bytes: data, never code.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.nnk"
                model.save(path, grads=False)
                state["_model_bytes"] = path.read_bytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        raw = state.pop("_model_bytes", None)
        self.__dict__.update(state)
        if raw is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.nnk"
                path.write_bytes(raw)
                self.model_ = Model.load(path, grads=False)


class NNKitClassifier(ClassifierMixin, _NNKitEstimator):
    """A classifier: any labels (ints, strings) are mapped to outputs through `classes_`;
    Softmax-with-Loss over one output per class. `predict` gives labels, `predict_proba`
    probabilities (columns in `classes_` order), `score` accuracy."""

    _loss = "SoftmaxWithLoss"

    def fit(self, X: Any, y: Any) -> NNKitClassifier:
        X, y = validate_data(self, X, y, dtype=FLOATS)
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes; "
                             f"y has only one class: {self.classes_[0]!r}")
        self._fit_model(X, indices.astype(np.int64), len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        probabilities = self.predict_proba(X)  # checks that the classifier is fitted
        return self.classes_[np.argmax(probabilities, axis=1)]


class NNKitRegressor(RegressorMixin, _NNKitEstimator):
    """A regressor for one target or several (y of shape (n,) or (n, k)); mean squared
    error on targets standardised at fit (predictions are mapped back), `score` R²."""

    _loss = "MeanSquaredError"

    def fit(self, X: Any, y: Any) -> NNKitRegressor:
        X, y = validate_data(self, X, y, dtype=FLOATS, y_numeric=True, multi_output=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        targets = y.reshape(len(y), -1)
        self._y_mean = targets.mean(axis=0)
        scale = targets.std(axis=0)
        self._y_scale = np.where(scale > 0, scale, 1.0)
        self._fit_model(X, (targets - self._y_mean) / self._y_scale, targets.shape[1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        y = self._outputs(X) * self._y_scale + self._y_mean
        return y.ravel() if self._y_1d else y

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
