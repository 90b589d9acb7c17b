"""Score a fitted IsolationForest with numpy, identically to scikit-learn but faster for small batches.

scikit-learn's ``score_samples`` walks each of its trees in turn, with a Python
loop and a joblib dispatch per tree: about 3 ms for one reading with 100 trees,
almost all of it overhead. Here the fitted trees are flattened once into numpy
arrays and every (reading, tree) pair walks down one level per step, all at once.
The arithmetic is scikit-learn's, in the same order (inputs cast to float32, the
same comparisons, NaN sent where each node sends missing values, path lengths
summed tree by tree), so the scores are bit-identical, which a test checks.

For very large batches scikit-learn's per-tree loop costs nothing relative to the
work, so ``score_samples`` hands such batches to it.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

SKLEARN_MIN_ROWS = 4_096  # from about this batch size on, scikit-learn is as fast or faster
CHUNK_ROWS = 4_096  # rows walked at once: bounds memory to a few MB per chunk


class FastForest:
    """Flattened trees of a fitted IsolationForest; ``score_samples(x)`` equals the forest's."""

    def __init__(self, forest: IsolationForest):
        self.forest = forest
        lefts, rights, features, thresholds, missing_left, terms, roots = [], [], [], [], [], [], []
        subsample = forest._max_features != forest.n_features_in_
        offset = 0
        for tree_idx, (estimator, columns) in enumerate(
            zip(forest.estimators_, forest.estimators_features_, strict=True)
        ):
            tree = estimator.tree_
            n = tree.node_count
            leaf = tree.children_left == -1
            own = np.arange(n) + offset
            # A leaf points to itself, so walking further than its depth changes nothing.
            lefts.append(np.where(leaf, own, tree.children_left + offset))
            rights.append(np.where(leaf, own, tree.children_right + offset))
            feature = np.where(leaf, 0, tree.feature)
            features.append(np.asarray(columns)[feature] if subsample else feature)
            thresholds.append(tree.threshold)
            missing_left.append(tree.missing_go_to_left.astype(bool))
            terms.append(forest._decision_path_lengths[tree_idx] + forest._average_path_length_per_tree[tree_idx] - 1.0)
            roots.append(offset)
            offset += n
        self.children = np.stack([np.concatenate(lefts), np.concatenate(rights)], axis=1).astype(np.intp)
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.missing_left = np.concatenate(missing_left)
        self.term = np.concatenate(terms)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = max(e.tree_.max_depth for e in forest.estimators_)
        self.denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])

    def _leaf_terms(self, x: np.ndarray) -> np.ndarray:
        """Path length term of the leaf each row reaches in each tree: shape (rows, trees)."""
        flat = x.ravel()
        row_start = (np.arange(len(x)) * x.shape[1])[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            value = flat[row_start + self.feature[node]].astype(np.float64)
            go_right = ~(value <= self.threshold[node])
            nan = np.isnan(value)
            if nan.any():
                go_right[nan] = ~self.missing_left[node[nan]]
            node = self.children[node, go_right.view(np.int8)]
        return self.term[node]

    def _scores(self, x: np.ndarray) -> np.ndarray:
        depths = np.zeros(len(x), order="f")
        for start in range(0, len(x), CHUNK_ROWS):
            terms = self._leaf_terms(x[start : start + CHUNK_ROWS])
            part = depths[start : start + CHUNK_ROWS]
            for t in range(terms.shape[1]):  # tree by tree, as scikit-learn sums them
                part += terms[:, t]
        return 2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths), where=self.denominator != 0))

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Same values as ``forest.score_samples(x)`` (lower = more abnormal)."""
        if len(x) >= SKLEARN_MIN_ROWS:
            return self.forest.score_samples(x)
        return -self._scores(np.ascontiguousarray(x, dtype=np.float32))
