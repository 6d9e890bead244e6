"""Fair benchmark of municipalities' and teams' monthly exit-to-work rates (stage
``benchmark``): observed against expected given clients and labour market, with funnel
limits, the empirically-Bayes-shrunk quality contribution and rank intervals. See
``core`` for the method, ``stats`` for the statistics."""

from impact.benchmark.core import (
    MUNICIPALITY_COLUMNS, TEAM_COLUMNS, YEAR_COLUMNS, BenchmarkResult, run_benchmark,
)
from impact.benchmark.params import BenchmarkParams

__all__ = ["MUNICIPALITY_COLUMNS", "TEAM_COLUMNS", "YEAR_COLUMNS", "BenchmarkParams",
           "BenchmarkResult", "run_benchmark"]
