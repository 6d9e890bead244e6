"""One pass over the panel file for every streamed quality specification (stage
``quality_sums``).

Why: the quality 2SLS and OLS of a specification come from the raw cluster blocks of one
pass over the person-months (``quality_stream``), and the specifications of params.yaml
made that pass each on their own, although several make the same one: ``quality_iv``
and ``quality_ols`` read the same model (the stage fits both and reports one), and a
specification with municipality x month effects reads that model without the two bins
that region x month effects add (``quality_stream.finish``). At national scale a pass is
about 40-55 CPU seconds.

So the specifications are grouped by what their pass depends on (``pass_key``: the
sample, the ``estimate`` settings but the fixed effects, the programme's anticipation
that codes a bin). One read of the file feeds one pass per group (the batches' rows of
the group's sample; made with region x month effects when a member has them, so that
every member's columns are in it), and each member's raw blocks are finished from its
group's pass with its own settings and written to ``<out>/<name>/`` (``sums.npz`` and
``meta.json``: the key, the column names and the warnings the pass gave, which the
estimate stage repeats; the blocks and cells are in ``sums.npz``). A specification the
stage does not serve (another block or estimator) gets a ``meta.json`` saying so, so that
every ``estimate@<name>`` depends on its own folder only.

``estimate@<name>`` reads its folder (``load``) when the key there is its own, and else
makes its own pass. The key holds the panel file's size and the checksum of its footer
(its row groups' sizes and statistics), so a folder of an earlier panel is not used when
a stage runs on its own (``dvc repro -s``, or by hand). It holds every ``estimate``
setting, those used only after the pass (``alpha``, ``inference``...) too: a setting the
pass may come to read cannot be forgotten, at the price of not sharing a pass between
specifications that differ in such a setting only. ``tests/estimate/test_quality_sums.py``
checks that both give the same numbers (bit for bit; municipality x month effects to
1e-12) and warnings.

A changed specification reruns this stage (a pass at national size, about 80 CPU s),
where it ran only its own estimate stage before; the estimate stages of the others see
their folders' bytes unchanged and do not run.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow.parquet as pq

from impact import io
from impact.estimate.cgram import ClusterGrams
from impact.estimate.frames import EstimationWarning, inflow_rows, lm_candidates
from impact.estimate.params import EstimateParams
from impact.estimate.quality_stream import (
    BATCH_ROWS, QualityGrams, _cluster_col, _in_sample, _Pass, finish, pass_reads,
    with_two_clusters,
)
from impact.estimate.specs import Specification
from impact.estimate.sums import cell_frame

__all__ = ["pass_key", "iter_shared_sums", "shared_sums", "write", "load"]

VERSION = 1
OUTCOMES = {"y": "exit_work"}


def pass_key(spec: Specification, base: EstimateParams, panel: str | Path
             ) -> dict[str, Any] | None:
    """What ``spec``'s quality pass over the file ``panel`` depends on (None: it makes
    none, e.g. the hazard's cells or another block)."""
    if spec.block != "quality" or spec.estimator not in ("iv", "ols"):
        return None
    params = spec.apply(base)
    est = params.to_dict()["estimate"]
    est.pop("quality_fe")
    return {"version": VERSION, "sample": spec.sample, "estimate": est,
            "anticipation_months": params.adoption.anticipation_months,
            "panel": _fingerprint(panel)}


def _fingerprint(path: str | Path) -> dict[str, Any]:
    """The Parquet file's size and the MD5 of its footer (schema, row groups, statistics):
    read in microseconds, different for a different panel."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(size - 8, 0))
        n = int.from_bytes(f.read(4), "little")
        f.seek(max(size - 8 - n, 0))
        footer = f.read(n + 8)
    return {"bytes": size, "footer_md5": hashlib.md5(footer).hexdigest()}


def shared_sums(path: str | Path, specs: Mapping[str, Specification], base: EstimateParams,
                batch_rows: int = BATCH_ROWS) -> dict[str, tuple[QualityGrams | None, list]]:
    """``iter_shared_sums`` as a dict."""
    return dict(iter_shared_sums(path, specs, base, batch_rows))


def iter_shared_sums(path: str | Path, specs: Mapping[str, Specification],
                     base: EstimateParams, batch_rows: int = BATCH_ROWS
                     ) -> Iterator[tuple[str, tuple[QualityGrams | None, list]]]:
    """(name, (raw blocks, warnings)) of each served specification: its raw blocks
    (``quality_grams(raw=True)``'s, None when no person-month is in its sample) and the
    warnings its own pass would give, from one read of ``path`` (module notes); nothing
    when no specification is served or the file has no quality columns (each stage then
    makes its own pass and says what is missing). A group's pass is dropped once its
    members are given."""
    path = Path(path)
    schema = pq.ParquetFile(path).schema_arrow.names
    keys = {name: pass_key(s, base, path) for name, s in specs.items()}
    served = {n: k for n, k in keys.items() if k is not None}
    if not served or "quality_a" not in schema or "quality_b" not in schema:
        return
    groups: dict[str, list[str]] = {}
    for name, key in served.items():
        groups.setdefault(json.dumps(key, sort_keys=True), []).append(name)
    runs = []  # (members, pass params, sample, columns, pass)
    for members in groups.values():
        spec = specs[members[0]]
        params = spec.apply(base)
        # with region x month effects when a member has them: its columns hold the others'
        fe = ("region_month" if any(specs[m].apply(base).estimate.quality_fe == "region_month"
                                    for m in members) else params.estimate.quality_fe)
        params = replace(params, estimate=replace(params.estimate, quality_fe=fe))
        lm = lm_candidates(schema, params.estimate.lm_controls)
        columns = pass_reads(schema, params, OUTCOMES, spec.sample)
        runs.append((members, params, spec.sample, columns,
                     _Pass(params, OUTCOMES, lm, _cluster_col(params))))
    reads = list(dict.fromkeys(c for run in runs for c in run[3]))
    inflow = any(sample == "inflow" for _, _, sample, _, _ in runs)
    for df in io.iter_batches(path, reads, batch_rows, keep=lambda b: _in_sample(b, "all")):
        first = inflow_rows(df) if inflow else None
        for _, _, sample, _, p in runs:
            s = df if sample == "all" else df.loc[first].reset_index(drop=True)
            if len(s):
                p.take(s)
    while runs:
        members, params, sample, columns, p = runs.pop(0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EstimationWarning)
            p = with_two_clusters(p, path, params, OUTCOMES, columns, sample, batch_rows)
            pass_warned = [str(w.message) for w in caught]
        for name in members:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", EstimationWarning)
                q = finish(p, specs[name].apply(base), OUTCOMES, raw=True)
            yield name, (q, pass_warned + [str(w.message) for w in caught])
        del p


def write(folder: Path, key: dict[str, Any] | None, got: tuple[QualityGrams | None, list] | None
          ) -> None:
    """``folder`` (made anew) with a specification's blocks and ``meta.json``; without
    ``got`` only the meta, saying the stage makes its own pass."""
    folder = io.clean_dir(folder)
    meta: dict[str, Any] = {"key": key, "shared": got is not None}
    if got is not None:
        q, warned = got
        meta["warnings"] = warned
        meta["empty"] = q is None
        if q is not None:
            g = q.grams
            meta.update(names=q.names, exog=q.exog, n_obs=int(g.n_obs))
            np.savez(folder / "sums.npz", C=g.C, labels=np.asarray(g.labels, dtype=str),
                     pair_cell=g.pair_cell, pair_cluster=g.pair_cluster, pair_sums=g.pair_sums,
                     pair_count=g.pair_count,
                     **{f"cell_{c}": q.cells[c].to_numpy(dtype=str if c != "t" else "int64")
                        for c in ("municipality", "region", "t")})
    io.write_json(meta, folder / "meta.json")


def load(folder: Path | None, key: dict[str, Any] | None):
    """A function giving the raw blocks written for ``key`` (None when the pass found no
    person-month) after repeating the pass's warnings; None when ``folder`` holds none for
    this key (no folder, another key, not shared): the stage makes its own pass."""
    if folder is None or key is None or not (Path(folder) / "meta.json").exists():
        return None
    meta = io.read_json(Path(folder) / "meta.json")
    if not meta.get("shared") or meta.get("key") != json.loads(json.dumps(key)):
        return None

    def get() -> QualityGrams | None:
        for msg in meta["warnings"]:
            warnings.warn(msg, EstimationWarning, stacklevel=2)
        if meta["empty"]:
            return None
        with np.load(Path(folder) / "sums.npz", allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        # as ``GramSums.cell_table`` makes it (from Python values: the same dtypes)
        cells = cell_frame(list(zip(*(a[f"cell_{c}"].tolist()
                                      for c in ("municipality", "region", "t")))))
        labels = np.asarray(a["labels"].tolist(), dtype=object)
        grams = ClusterGrams(a["C"], labels, None, meta["n_obs"], None,
                             a["pair_cell"], a["pair_cluster"], a["pair_sums"], a["pair_count"])
        return QualityGrams(grams, meta["names"], meta["exog"], cells, "", [], 0)

    return get
