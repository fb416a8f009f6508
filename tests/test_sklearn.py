"""The scikit-learn estimators pass scikit-learn's own estimator checks and work where
scikit-learn users put estimators: clone, pipelines, grid search, pickles, DataFrames."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from nnkit.sklearn import NNKitClassifier, NNKitRegressor  # noqa: E402

from .conftest import EXAMPLES  # noqa: E402


@parametrize_with_checks([NNKitClassifier(), NNKitRegressor()])
def test_scikit_learn_estimator_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def test_grid_search_over_a_pipeline_on_digits() -> None:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    pipeline = make_pipeline(StandardScaler(), NNKitClassifier(epochs=30))
    search = GridSearchCV(pipeline, {"nnkitclassifier__lr": [0.003, 0.01], "nnkitclassifier__hidden_units": [(64,)]},
                          cv=3)
    search.fit(x_train, y_train)
    assert search.best_params_["nnkitclassifier__lr"] in (0.003, 0.01)
    assert search.score(x_test, y_test) >= 0.95


def test_labels_of_any_kind_and_probabilities() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 3))
    labels = np.array(["cat", "dog", "eel"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)]
    clf = NNKitClassifier(epochs=60).fit(x, labels)
    assert list(clf.classes_) == ["cat", "dog", "eel"]
    assert set(clf.predict(x)) <= {"cat", "dog", "eel"} and clf.score(x, labels) > 0.9
    proba = clf.predict_proba(x)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        NNKitClassifier().fit(x, np.zeros(120))


def test_clone_cross_validation_and_pickle() -> None:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    clf = NNKitClassifier(hidden_units=(32,), epochs=10, lr=0.01)
    assert clone(clf).get_params() == clf.get_params()
    scores = cross_val_score(clf, x[:600], y[:600], cv=3)
    assert scores.mean() > 0.85
    fitted = clone(clf).fit(x[:600], y[:600])
    restored = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(restored.predict_proba(x[600:700]), fitted.predict_proba(x[600:700]))
    assert b"nnkit-ckpt" in pickle.dumps(fitted)  # stored as an nnkit checkpoint, not pickled objects


def test_a_model_file_as_template_and_dataframes() -> None:
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    reg = NNKitRegressor(EXAMPLES / "regression.toml", epochs=60)
    reg.fit(data.data.iloc[:350], data.target.iloc[:350])
    assert list(reg.feature_names_in_) == list(data.data.columns)
    assert reg.model_.network.shapes["out"] == (1,)  # the template's output units set from y
    assert reg.score(data.data.iloc[350:], data.target.iloc[350:]) > 0.3
    assert isinstance(data.data, pd.DataFrame)
