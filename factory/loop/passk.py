"""The unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on Code").

With ``n`` samples of which ``c`` are correct, pass@k = 1 - C(n-c, k) / C(n, k): one minus the chance
that ``k`` samples drawn without replacement from the ``n`` are all wrong. The ratio of binomials is
computed as the product  prod_{i=n-c+1}^{n} (1 - k/i),  which never forms a large binomial.
"""

from __future__ import annotations

from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples, ``c`` of them correct."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"pass_at_k: {name} must be an int, got {type(value).__name__}")
    if n < 0 or c < 0:
        raise ValueError(f"pass_at_k: n and c must be non-negative, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"pass_at_k: k must be at least 1, got k={k}")
    if c > n:
        raise ValueError(f"pass_at_k: c={c} correct samples cannot exceed n={n} samples")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} exceeds the n={n} samples; draw at least k samples per problem")
    if n - c < k:
        return 1.0  # every k-subset contains a correct sample
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems, each given as ``(n, c)``. Raises ValueError when there are none."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("mean_pass_at_k: no problems given")
    return sum(values) / len(values)
