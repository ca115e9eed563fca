"""Rolling windows over a 1-D series and their reductions, computed as numpy computes them, without its per-call cost.

A decision reduces a dozen small windows, where numpy's Python-level bookkeeping (``sliding_window_view``'s checks,
``ndarray.std``'s ``_methods._var``) costs more than the arithmetic. These helpers keep the arithmetic numpy's own:

* :func:`windows` is ``numpy.lib.stride_tricks.sliding_window_view(x, w)`` for a 1-D array: the same read-only view
  (shape ``(n - w + 1, w)``, both strides one element), made directly;
* :func:`means` and :func:`stds` are ``v.mean(axis=1)`` and ``v.std(axis=1)``: the same ufunc calls in the same order
  as ``numpy/_core/_methods.py`` (``_mean``, ``_var``, ``_std``), so the same bits.

tests/unit/domain/test_windows.py holds every one equal, bit for bit, to the numpy call it stands for.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def windows(x: NDArray[np.float64], w: int) -> NDArray[np.float64]:
    """Every run of ``w`` consecutive elements of the 1-D ``x``, one per row (a read-only view, no copy).

    Raises:
        ValueError: ``w`` is not in ``1..len(x)`` (as ``sliding_window_view`` refuses it).
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 1 or not 1 <= w <= x.shape[0]:
        raise ValueError(f"need a 1-D array of at least {w} elements and a window of at least 1, got {x.shape}")
    step = x.strides[0]
    view: NDArray[np.float64] = np.ndarray((x.shape[0] - w + 1, w), x.dtype, x, 0, (step, step))
    view.flags.writeable = False
    return view


def means(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """``v.mean(axis=1)`` for a 2-D float array: the row sums divided by the row length (numpy's ``_mean``)."""
    total: NDArray[np.float64] = np.add.reduce(v, axis=1)
    return np.true_divide(total, np.intp(v.shape[1]), out=total, casting="unsafe")


def stds(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """``v.std(axis=1)`` (population) for a 2-D float array: numpy's ``_var`` then ``sqrt``, call for call."""
    count = np.intp(v.shape[1])
    mean: NDArray[np.float64] = np.add.reduce(v, axis=1, keepdims=True)
    mean = np.true_divide(mean, count, out=mean, casting="unsafe")
    deviations = np.subtract(v, mean)
    np.square(deviations, out=deviations)
    var: NDArray[np.float64] = np.add.reduce(deviations, axis=1)
    var = np.true_divide(var, np.maximum(count, 0), out=var, casting="unsafe")
    return np.sqrt(var, out=var)
