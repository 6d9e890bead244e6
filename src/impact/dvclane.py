"""``python -m impact.dvclane ARGS``: the ``dvc`` command, reading ``dvc.lock`` with the
C YAML parser before it rewrites the file.

After every stage, DVC rewrites its ``dvc.lock`` under the repository lock: it parses the
whole file with ruamel's pure-Python round-trip loader (which keeps comments and scalar
styles), adds the stage's entry and dumps it again. On this project's 118 kB lock file
the round-trip parse takes about 1 s per stage of the 2-5 s DVC spends on each, and
the other ``impact repro`` lane waits for the lock meanwhile. DVC's maintainers know the
cost (treeverse/dvc#10629: "dvc opens the dvc.lock file at least twice per stage";
treeverse/dvc#10942, an opt-in fast parser, not merged).

``dvc.lock`` is DVC's own file and holds nothing a round trip keeps: no comments, and
only the styles DVC's dumper writes. Loading it with ruamel's C-based safe loader
(``ruamel.yaml.clib``, a dependency here) and dumping with DVC's unchanged dumper
therefore writes the same bytes, about ten times faster to load. Two guards keep it so:

- only a file named ``dvc.lock`` is read this way; ``dvc.yaml`` and every other file
  keep DVC's round trip;
- a ``dvc.lock`` with a comment line (edited by hand) keeps the round trip too.

``tests/test_dvclane.py`` checks that both loaders give the same file for the project's
own ``dvc.lock`` and for a fresh one, and ``impact repro``'s tests run through this
module. Every other behaviour is DVC's: this module only swaps the loader and calls
``dvc.cli.main``. If a future DVC moves the function replaced here, the swap is skipped
(the plain round trip, only slower).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

__all__ = ["install", "main"]


def _has_comment(text: str) -> bool:
    return any(line.lstrip().startswith("#") for line in text.splitlines())


def install() -> bool:
    """Replace the ``modify_yaml`` that ``dvc.dvcfile`` uses for ``dvc.lock``; returns
    whether it was replaced."""
    try:
        import dvc.dvcfile as dvcfile
        from dvc.utils.serialize import _yaml
        from dvc.utils.serialize._common import _modify_data
    except ImportError:  # pragma: no cover - a DVC that moved these
        return False
    stock = getattr(dvcfile, "modify_yaml", None)
    if stock is None or not hasattr(_yaml, "parse_yaml") or not hasattr(_yaml, "_dump"):
        return False  # pragma: no cover

    def parse(text: str, path: Any) -> Any:
        if _has_comment(text):
            return _yaml.parse_yaml_for_update(text, path)
        return _yaml.parse_yaml(text, path)  # typ="safe": ruamel's C loader

    @contextlib.contextmanager
    def modify_yaml(path: Any, fs: Any = None) -> Iterator[Any]:
        if os.path.basename(os.fspath(path)) != "dvc.lock":
            with stock(path, fs=fs) as data:
                yield data
            return
        with _modify_data(path, parse, _yaml._dump, fs=fs) as data:
            yield data

    dvcfile.modify_yaml = modify_yaml
    return True


def main(argv: list[str] | None = None) -> int:
    install()
    from dvc.cli import main as dvc_main

    return dvc_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
