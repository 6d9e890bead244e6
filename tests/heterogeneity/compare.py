"""Comparisons shared by the tests of the streamed heterogeneity parts: a file-based result
against the in-memory one, to a tolerance relative to the largest value."""

import numpy as np
import pandas as pd

TOL = 1e-8


def close(a, b, what: str, tol: float = TOL) -> None:
    """Arrays equal in shape and missing values, and to ``tol`` x max(1, max |b|)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    assert a.shape == b.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    scale = max(1.0, float(np.nanmax(np.abs(b)))) if np.isfinite(b).any() else 1.0
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=0, atol=tol * scale,
                               err_msg=what)


def same_frame(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """The same columns and rows; numbers by ``close``, the rest as text."""
    assert list(got.columns) == list(want.columns), what
    assert len(got) == len(want), what
    for c in want.columns:
        a, b = got[c].reset_index(drop=True), want[c].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            close(a, b, f"{what}: {c}")
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), f"{what}: {c}"


def same_cddf(got, want) -> None:
    """Two ``CDDFResult``s: every table, the per-split numbers, proxies and halves."""
    for name in ("blp", "gates", "clan", "per_split", "proxies"):
        same_frame(getattr(got, name), getattr(want, name), name)
    assert [list(m) for m in got.main_clusters] == [list(m) for m in want.main_clusters]


def same_groups(got, want) -> None:
    """Two lists of ``GroupEstimates``: dimensions, outcomes, labels, clusters, estimates,
    scores, counts, pooled effect and the bootstrap draws."""
    assert [(g.dimension, g.outcome) for g in got] == [(w.dimension, w.outcome) for w in want]
    for g, w in zip(got, want):
        what = f"{w.dimension}/{w.outcome}"
        assert g.labels == w.labels and g.n_clusters == w.n_clusters, what
        assert list(g.clusters) == list(w.clusters), what
        for f in ("estimate", "scores", "n_person_months", "n_clients", "n_events"):
            close(getattr(g, f), getattr(w, f), f"{what}: {f}")
        close(g.overall, w.overall, f"{what}: overall")
        close(g.overall_se, w.overall_se, f"{what}: overall_se")
        assert (g.t_boot is None) == (w.t_boot is None), what
        if w.t_boot is not None:
            close(g.t_stat, w.t_stat, f"{what}: t")
            close(g.t_boot, w.t_boot, f"{what}: t_boot")
            assert g.enumerated == w.enumerated, what


def both(in_memory, from_file, path, *args, batch_rows: int = 1000, **kw):
    """(file result, in-memory result) of the same call, warnings silenced: ``in_memory``
    gets the panel read whole, ``from_file`` its path and ``batch_rows``."""
    import warnings

    from impact import io

    pm = io.read_person_months(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = in_memory(pm, *args, **kw)
        got = from_file(path, *args, batch_rows=batch_rows, **kw)
    return got, want
