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
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

LEVELWISE_MAX_ROWS = 256  # measured: the compiled walk tree by tree overtakes between 100 and 300 rows
CHUNK_ROWS = 65_536  # rows walked at once: a few MB, kept in cache across the trees


def _float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each threshold: for a float32 x, ``x <= t`` iff ``x <= _float32_at_most(t)``."""
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


class FastForest:
    """A fitted IsolationForest prepared for fast scoring; ``score_samples(x)`` equals the forest's.

    For the level-wise walk every split is rewritten as one float32 comparison
    ``value < bound`` whose False outcome is where the node sends a missing value (a
    comparison with NaN is False): a node that sends NaN left compares the negated
    value (``-x < -t`` means right), a node that sends NaN right compares ``x < t'``
    with ``t'`` the next float32 above the threshold (True means left). Node ``i`` is
    stored at ``2 i``, so its child for outcome ``r`` is at ``2 i + r``.
    """

    def __init__(self, forest: IsolationForest):
        self.forest = forest
        self.n_features = forest.n_features_in_
        subsample = forest._max_features != forest.n_features_in_
        features, bounds, children, terms, roots, self._trees = [], [], [], [], [], []
        offset = 0
        for tree_idx, (estimator, columns) in enumerate(
            zip(forest.estimators_, forest.estimators_features_, strict=True)
        ):
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
            features.append(np.where(nan_left, feature + self.n_features, feature))  # negated copy of x
            bounds.append(np.where(nan_left, -bound, np.nextafter(bound, np.float32(np.inf))))
            children.append(np.where(nan_left, [left, right], [right, left]).T)
            term = forest._decision_path_lengths[tree_idx] + forest._average_path_length_per_tree[tree_idx] - 1.0
            terms.append(term)
            roots.append(offset)
            self._trees.append((tree, np.asarray(columns) if subsample else None, term))
            offset += n
        self.feature = np.repeat(np.concatenate(features), 2).astype(np.intp)
        self.bound = np.repeat(np.concatenate(bounds).astype(np.float32), 2)
        self.child = (2 * np.concatenate(children)).ravel().astype(np.intp)
        self.term = np.repeat(np.concatenate(terms), 2)
        self.roots = 2 * np.asarray(roots, dtype=np.intp)
        self.depth = max(e.tree_.max_depth for e in forest.estimators_)
        self.denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])

    def _levelwise_depths(self, x: np.ndarray) -> np.ndarray:
        """Summed path lengths of float32 rows ``x``, all trees walked at once, level by level."""
        n = len(x)
        values = np.empty((n, 2 * self.n_features), dtype=np.float32)
        values[:, : self.n_features] = x
        np.negative(x, out=values[:, self.n_features :])
        flat = values.ravel()
        row_start = (np.arange(n) * (2 * self.n_features))[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots)))
        for _ in range(self.depth):
            column = self.feature[node]
            if n > 1:
                column += row_start
            node = self.child[node + (flat[column] < self.bound[node])]
        return np.cumsum(self.term[node], axis=1)[:, -1]  # tree by tree, as scikit-learn sums them

    def _tree_by_tree_depths(self, x: np.ndarray) -> np.ndarray:
        """Summed path lengths of float32 rows ``x``, with scikit-learn's compiled walk of each tree."""
        depths = np.zeros(len(x))
        for start in range(0, len(x), CHUNK_ROWS):
            rows, part = x[start : start + CHUNK_ROWS], depths[start : start + CHUNK_ROWS]
            for tree, columns, term in self._trees:
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
