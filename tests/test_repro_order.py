"""`impact repro`'s ordering of ready stages (the DVC side is tests/test_dvc_pipeline.py)."""

from impact.repro import Plan, _priority


def _plan():
    # panel -> (a, b, slow) ; a, b -> report ; slow -> report
    return Plan(["panel", "a", "b", "slow", "report"],
                {"panel": set(), "a": {"panel"}, "b": {"panel"}, "slow": {"panel"},
                 "report": {"a", "b", "slow"}},
                {"slow": 50.0})


def test_longest_chain_first_from_dvc_yaml_expectation():
    pr = _priority(_plan(), {})
    # unknown stages count 1 s; `slow` has expected_seconds 50 in dvc.yaml
    assert pr["report"] == 1.0 and pr["a"] == 2.0 and pr["slow"] == 51.0
    assert pr["panel"] == 52.0
    assert sorted(["a", "b", "slow"], key=lambda s: -pr[s])[0] == "slow"


def test_times_of_the_last_run_win():
    pr = _priority(_plan(), {"a": 90.0, "slow": 10.0})
    assert pr["a"] == 91.0 and pr["slow"] == 11.0
    assert sorted(["a", "b", "slow"], key=lambda s: -pr[s]) == ["a", "slow", "b"]
