"""Which files of a row's code folder are its outputs (the ``--results`` globs). Standard library only."""

from __future__ import annotations

import glob
from pathlib import Path


def find_outputs(code: Path, patterns: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Files matching the result globs, keyed by their path below the pattern's fixed folder.

    ``results/**`` saves ``results/a/b.csv`` as ``a/b.csv``; ``*.csv`` saves ``x.csv`` as ``x.csv``.
    """
    outputs: dict[str, Path] = {}
    warnings = []
    for pattern in patterns:
        fixed = []
        for part in Path(pattern).parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        base = code.joinpath(*fixed) if fixed else code
        if base.is_file():  # a plain file name: keep its name
            base = base.parent
        matches = [Path(m) for m in glob.glob(pattern, root_dir=code, recursive=True)]
        files = [code / m for m in matches if (code / m).is_file()]
        if not files:
            warnings.append(f"no output matches {pattern!r} in the code folder")
        for path in sorted(files):
            outputs[path.relative_to(base).as_posix()] = path
    return outputs, warnings
