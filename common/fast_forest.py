"""Score a fitted IsolationForest identically to scikit-learn, but faster, whatever the batch size.

scikit-learn's ``score_samples`` walks each of its trees in turn, with a Python loop
and a joblib dispatch per tree: about 3 ms for one reading with 100 trees, almost all
of it overhead. Two ways around it, picked by batch size:

- small batches (up to ``LEVELWISE_MAX_ROWS`` rows): the fitted trees are flattened
  once into numpy arrays and every (reading, tree) pair walks down one level per step,
  all at once: a few dozen numpy operations for the whole forest;
- larger batches: scikit-learn's own compiled walk (``tree_.apply``), tree by tree, as
  ``score_samples`` does, without its per-call validation and joblib dispatch, with the
  path length of each leaf computed once, and rows in chunks that stay in cache.

Both give scikit-learn's scores to the last bit (tested on a million rows with NaN):
inputs are cast to float32 as scikit-learn casts them, each split sends a value, NaN
included, where scikit-learn's tree sends it, and path lengths are added tree by tree
in the forest's order, as scikit-learn adds them.

``FastForestHolder`` gives a model that keeps a forest both: this walk, and a pickle that
loads without importing scikit-learn.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scikit-learn is imported only to flatten a forest or to walk a large batch
    from sklearn.ensemble import IsolationForest

LEVELWISE_MAX_ROWS = 256  # measured: the compiled walk tree by tree overtakes between 100 and 300 rows
CHUNK_ROWS = 65_536  # rows walked at once: a few MB, kept in cache across the trees


def _float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each threshold: for a float32 x, ``x <= t`` iff ``x <= _float32_at_most(t)``."""
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def flatten(forest: IsolationForest) -> dict[str, np.ndarray]:
    """The arrays ``FastForest`` walks, one entry per node of every tree, in the forest's order.

    Plain numpy arrays (``np.savez`` or pickle them as they are): with them, scoring up to
    ``LEVELWISE_MAX_ROWS`` rows needs neither the fitted forest nor scikit-learn.
    """
    from sklearn.ensemble._iforest import _average_path_length

    n_features = forest.n_features_in_
    subsample = forest._max_features != n_features
    features, bounds, children, terms, roots = [], [], [], [], []
    offset = 0
    for tree_idx, (estimator, columns) in enumerate(zip(forest.estimators_, forest.estimators_features_, strict=True)):
        tree = estimator.tree_
        n = tree.node_count
        leaf = tree.children_left == -1
        own = np.arange(n) + offset
        # A leaf points to itself, so walking further than its depth changes nothing.
        left = np.where(leaf, own, tree.children_left + offset)
        right = np.where(leaf, own, tree.children_right + offset)
        feature = np.where(leaf, 0, tree.feature)
        feature = np.asarray(columns)[feature] if subsample else feature
        nan_left = tree.missing_go_to_left.astype(bool)
        bound = _float32_at_most(tree.threshold)
        features.append(np.where(nan_left, feature + n_features, feature))  # negated copy of x
        bounds.append(np.where(nan_left, -bound, np.nextafter(bound, np.float32(np.inf))))
        children.append(np.where(nan_left, [left, right], [right, left]).T)
        terms.append(forest._decision_path_lengths[tree_idx] + forest._average_path_length_per_tree[tree_idx] - 1.0)
        roots.append(offset)
        offset += n
    return {
        "feature": np.concatenate(features).astype(np.int64),
        "bound": np.concatenate(bounds).astype(np.float32),
        "child": np.concatenate(children).astype(np.int64),
        "term": np.concatenate(terms).astype(np.float64),
        "root": np.asarray(roots, dtype=np.int64),
        "depth": np.int64(max(e.tree_.max_depth for e in forest.estimators_)),
        "n_features": np.int64(n_features),
        "denominator": np.float64(len(forest.estimators_) * _average_path_length([forest._max_samples])[0]),
    }


class FastForest:
    """A fitted IsolationForest prepared for fast scoring; ``score_samples(x)`` equals the forest's.

    For the level-wise walk every split is rewritten as one float32 comparison
    ``value < bound`` whose False outcome is where the node sends a missing value (a
    comparison with NaN is False): a node that sends NaN left compares the negated
    value (``-x < -t`` means right), a node that sends NaN right compares ``x < t'``
    with ``t'`` the next float32 above the threshold (True means left). Node ``i`` is
    stored at ``2 i``, so its child for outcome ``r`` is at ``2 i + r``.

    ``FastForest(forest)`` flattens a fitted forest; ``FastForest.from_arrays(flatten(forest),
    lambda: forest)`` rebuilds the same scorer from the flat arrays alone and asks for the
    forest only when a large batch needs scikit-learn's compiled walk.
    """

    def __init__(self, forest: IsolationForest):
        self._setup(flatten(forest), lambda: forest)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], forest: Callable[[], IsolationForest]) -> FastForest:
        """The scorer of ``flatten``'s arrays; ``forest()`` gives the fitted forest when a large batch comes."""
        fast = cls.__new__(cls)
        fast._setup(arrays, forest)
        return fast

    def _setup(self, arrays: dict[str, np.ndarray], forest: Callable[[], IsolationForest]) -> None:
        self.arrays = arrays
        self._forest = forest
        self._trees: list | None = None  # scikit-learn's trees, for large batches: looked up on first use
        self.n_features = int(arrays["n_features"])
        self.feature = np.repeat(arrays["feature"], 2).astype(np.intp)
        self.bound = np.repeat(arrays["bound"], 2)
        self.child = (2 * arrays["child"]).ravel().astype(np.intp)
        self.term = np.repeat(arrays["term"], 2)
        self.roots = 2 * arrays["root"].astype(np.intp)
        self.depth = int(arrays["depth"])
        self.denominator = float(arrays["denominator"])

    @property
    def forest(self) -> IsolationForest:
        return self._forest()

    def _tree_walks(self) -> list:
        """(tree, its columns or None, path length of each of its leaves) for each tree of the forest."""
        if self._trees is None:
            forest = self.forest
            subsample = forest._max_features != forest.n_features_in_
            ends = [*self.arrays["root"][1:], len(self.arrays["term"])]
            self._trees = [
                (estimator.tree_, np.asarray(columns) if subsample else None, self.arrays["term"][start:end])
                for estimator, columns, start, end in zip(
                    forest.estimators_, forest.estimators_features_, self.arrays["root"], ends, strict=True
                )
            ]
        return self._trees

    def _levelwise_depths(self, x: np.ndarray) -> np.ndarray:
        """Summed path lengths of float32 rows ``x``, all trees walked at once, level by level."""
        n = len(x)
        values = np.empty((n, 2 * self.n_features), dtype=np.float32)
        values[:, : self.n_features] = x
        np.negative(x, out=values[:, self.n_features :])
        flat = values.ravel()
        row_start = (np.arange(n) * (2 * self.n_features))[:, None]
        node = self.roots.reshape(1, -1) if n == 1 else np.broadcast_to(self.roots, (n, len(self.roots)))
        for _ in range(self.depth):  # take: numpy's indexing without its general machinery, the same values
            column = self.feature.take(node)
            if n > 1:
                column += row_start
            node = self.child.take(node + (flat.take(column) < self.bound.take(node)))
        return np.cumsum(self.term.take(node), axis=1)[:, -1]  # tree by tree, as scikit-learn sums them

    def _tree_by_tree_depths(self, x: np.ndarray) -> np.ndarray:
        """Summed path lengths of float32 rows ``x``, with scikit-learn's compiled walk of each tree."""
        depths = np.zeros(len(x))
        for start in range(0, len(x), CHUNK_ROWS):
            rows, part = x[start : start + CHUNK_ROWS], depths[start : start + CHUNK_ROWS]
            for tree, columns, term in self._tree_walks():
                part += term[tree.apply(rows if columns is None else rows[:, columns])]
        return depths

    def _scores(self, depths: np.ndarray) -> np.ndarray:
        return 2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths), where=self.denominator != 0))

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Same values as ``forest.score_samples(x)`` (lower = more abnormal)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        if len(x) <= LEVELWISE_MAX_ROWS:
            return -self._scores(self._levelwise_depths(x))
        return -self._scores(self._tree_by_tree_depths(x))


class FastForestHolder:
    """What an object keeping a fitted IsolationForest in ``forest_`` gets, to score and load fast.

    ``_fast_forest()`` is its ``FastForest``, built once. Pickled (``registry.save``), the
    holder keeps its forest twice: flattened into plain numpy arrays (``flatten``), and as
    the forest's own pickle, kept as bytes. Unpickling it then imports neither scikit-learn
    nor 100 tree objects: scoring a reading or a small batch walks the arrays, and
    ``forest_`` is unpickled from its bytes the first time something asks for it (a large
    batch, a notebook).
    """

    def _forget_forest(self) -> None:
        """Drop what was derived from a previous ``forest_``, before a new one is fitted."""
        for derived in ("_fast", "_forest_arrays", "_forest_pickle"):
            self.__dict__.pop(derived, None)

    def _fast_forest(self) -> FastForest:
        """The forest prepared for numpy scoring, built once per fitted forest (not pickled).

        From the flat arrays when the holder was unpickled (the forest itself stays bytes
        until a large batch needs it), else from ``forest_``.
        """
        fast = self.__dict__.get("_fast")
        if fast is None:
            arrays = self.__dict__.get("_forest_arrays")
            fast = FastForest(self.forest_) if arrays is None else FastForest.from_arrays(arrays, lambda: self.forest_)
            self._fast = fast
        return fast

    def __getattr__(self, name: str):
        """``forest_`` of an unpickled holder: unpickled from its bytes on first use (only then)."""
        state = self.__dict__
        data = state.get("_forest_pickle") if name == "forest_" else None
        if data is not None:  # read once: a concurrent first use may pop it meanwhile
            state.setdefault("forest_", pickle.loads(data))  # part of the artifact whose sha256 was checked
            state.pop("_forest_pickle", None)  # only once forest_ is set: one of the two is always there
        if name == "forest_" and "forest_" in state:  # a concurrent first use got there first
            return state["forest_"]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def warm_up(self) -> threading.Thread | None:
        """Unpickle the scikit-learn forest in a background thread, if it is still bytes.

        Only batches over ``LEVELWISE_MAX_ROWS`` rows need it; its first use imports
        scikit-learn (about 1.5 s). A service calls this once its model is loaded, so that
        it is ready without delaying startup, nor the first large batch.
        """
        if "_forest_pickle" not in self.__dict__ or self.__dict__.get("_warming"):
            return None
        self._warming = True
        thread = threading.Thread(target=getattr, args=(self, "forest_"), name="forest-warm-up", daemon=True)
        thread.start()
        return thread

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_fast", None)  # rebuilt from the arrays after loading
        state.pop("_warming", None)
        if "forest_" in state or "_forest_pickle" in state:
            state["_forest_arrays"] = self._fast_forest().arrays
            if "forest_" in state:
                state["_forest_pickle"] = pickle.dumps(state.pop("forest_"), protocol=pickle.HIGHEST_PROTOCOL)
        return state
