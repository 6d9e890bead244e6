"""`impact.dvclane`: DVC with dvc.lock read by the C parser writes the same bytes as DVC."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from dvc.utils.serialize._yaml import _dump, parse_yaml, parse_yaml_for_update

from impact import dvclane
from pipeline_utils import ROOT, env

# parameter values whose YAML is easy to get wrong: strings that look like other types
# (a date too: DVC refuses unquoted dates), small and large floats, nulls, nested lists, long and non-ASCII strings
PARAMS = """\
seed: 20261124
odd:
  yes_str: "yes"
  null_str: "null"
  octal_str: "0123"
  month: "2020-04"
  day: "2021-05-01"
  tiny: 1.0e-08
  big: 12345678901234.5
  none: null
  flag: true
  nested: [[1, 2], [a, "b c"], []]
  long: "a string long enough that the dumper must fold it somewhere past the eightieth column of its line"
  text: "Gewogen Maatwerk — één, twee: 'drie' # geen commentaar"
"""


def _dumped(data) -> str:
    s = io.StringIO()
    _dump(data, s)
    return s.getvalue()


def test_the_swap_is_installed_in_this_dvc():
    """With the locked DVC the swap happens (else impact repro silently gets slower)."""
    assert dvclane.install()
    import dvc.dvcfile

    assert dvc.dvcfile.modify_yaml.__module__ == "impact.dvclane"


def test_both_loaders_write_the_project_lock_unchanged():
    text = (ROOT / "dvc.lock").read_text()
    assert _dumped(parse_yaml(text, "dvc.lock")) == text
    assert _dumped(parse_yaml_for_update(text, "dvc.lock")) == text


def _repo(path: Path) -> dict:
    path.mkdir()
    sh = {"cwd": path, "env": env(), "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q", "-b", "main"], **sh)
    subprocess.run(["dvc", "init", "-q"], **sh)
    (path / "params.yaml").write_text(PARAMS)
    (path / "dvc.yaml").write_text(
        "stages:\n"
        "  cell:\n    foreach: [x, y, z]\n    do:\n"
        "      cmd: echo ${item} > out_${item}.txt\n"
        "      params: [seed, odd]\n      outs:\n      - out_${item}.txt\n"
        "  join:\n"
        "    cmd: >-\n      cat out_x.txt out_y.txt out_z.txt > joined.txt &&\n"
        "      echo a command long enough to be folded by the dumper at eighty columns\n"
        "    deps: [out_x.txt, out_y.txt, out_z.txt]\n    params: [odd.nested, odd.text]\n"
        "    outs: [joined.txt]\n")
    return sh


def test_lock_written_stage_by_stage_equals_dvc_own(tmp_path):
    """Stages run one by one (each rereads the lock file and adds or replaces its entry),
    once by `dvc` and once by `impact.dvclane`: the two dvc.lock files are byte-identical."""
    runs = [["cell@y"], ["cell@x"], ["cell@z"], ["join"], ["-f", "cell@x"]]
    locks = {}
    for name, cmd in (("dvc", ["dvc"]), ("lane", [sys.executable, "-m", "impact.dvclane"])):
        sh = _repo(tmp_path / name)
        for args in runs:
            subprocess.run([*cmd, "repro", "--single-item", *args], **sh)
        locks[name] = (tmp_path / name / "dvc.lock").read_text()
    assert "cell@z" in locks["lane"] and "join" in locks["lane"]
    assert locks["lane"] == locks["dvc"]


def test_a_lock_with_comments_keeps_them(tmp_path):
    """A dvc.lock edited by hand (a comment) is read with DVC's round trip, which keeps
    the comment."""
    sh = _repo(tmp_path / "r")
    lane = [sys.executable, "-m", "impact.dvclane"]
    subprocess.run([*lane, "repro", "--single-item", "cell@x"], **sh)
    lock = tmp_path / "r" / "dvc.lock"
    lock.write_text(lock.read_text().replace("stages:\n", "stages:\n  # checked by hand\n"))
    subprocess.run([*lane, "repro", "--single-item", "cell@y"], **sh)
    text = lock.read_text()
    assert "# checked by hand" in text and "cell@y" in text
