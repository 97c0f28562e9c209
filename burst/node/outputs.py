"""Which files of a row's code folder are its outputs (the ``--results`` globs). Standard library only."""

from __future__ import annotations

import glob
from pathlib import Path

from burst.protocol import tail


def fixed_folder(pattern: str) -> str:
    """The folder of a pattern before its first glob character, "" for the code folder itself.

    ``results/**`` -> ``results``, ``out/*.csv`` -> ``out``, ``out/summary.json`` -> ``out``, ``*.csv`` -> "".
    """
    fixed = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    else:
        fixed = fixed[:-1]  # a plain file name: its folder
    return "/".join(fixed)


def _matches(code: Path, pattern: str) -> list[Path]:
    """What ``pattern`` matches in ``code`` (files, links, folders), relative to it.

    A match ending in "/" names a folder: glob gives ``results/`` for ``results/**`` even
    when ``results`` is a file, which no pattern means.
    """
    prefix = str(code).rstrip("/") + "/"  # not glob's root_dir: Python 3.10 and later only
    found = glob.glob(glob.escape(prefix) + pattern, recursive=True)
    return [Path(m[len(prefix):]) for m in found if not m.endswith("/") and m.startswith(prefix)]


def prepare_results(code: Path, patterns: list[str]) -> list[str]:
    """Before a row's command starts in its fresh copy: each pattern's fixed folder exists, and nothing matches.

    So a command may write ``results/a.txt`` without ``mkdir -p results``, and every
    file saved afterwards was written by the command, never one that came with the
    code folder (a stale result of a test run would otherwise be saved as this row's).
    Only files inside the copy are removed (a symlinked folder's files are not).
    Returns warnings: a fixed folder that cannot be made because a file has its name.
    """
    root = code.resolve()
    warnings = []
    for pattern in patterns:
        for match in _matches(code, pattern):
            path = code / match
            if (path.is_file() or path.is_symlink()) and path.parent.resolve().is_relative_to(root):
                path.unlink()
        folder = fixed_folder(pattern)
        try:
            (code / folder).mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            warnings.append(f"the folder {folder}/ of {pattern!r} could not be made: a file of the code folder has its name")
    return warnings


def find_outputs(code: Path, patterns: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Files matching the result globs, keyed by their path below the pattern's fixed folder.

    ``results/**`` saves ``results/a/b.csv`` as ``a/b.csv``; ``*.csv`` saves ``x.csv`` as ``x.csv``.
    Only files inside the row's copy of the code folder are outputs: a match that leads
    outside it through a symlink (a link to a file, or into a linked folder) is skipped,
    and a warning names it; a link to a file inside the copy saves that file's content.
    """
    outputs: dict[str, Path] = {}
    warnings = []
    root = code.resolve()
    for pattern in patterns:
        base = code / fixed_folder(pattern)
        files = [code / m for m in _matches(code, pattern) if (code / m).is_file()]
        outside = sorted(p.relative_to(code).as_posix() for p in files if not p.resolve().is_relative_to(root))
        if outside:
            shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
            warnings.append(f"not saved: {shown}, matched by {pattern!r}, lead(s) outside the row's folder "
                            f"through a symlink; outputs are files inside it")
            files = [p for p in files if p.relative_to(code).as_posix() not in outside]
        if not files and not outside:
            warnings.append(f"no output matches {pattern!r} in the code folder")
        for path in sorted(files):
            outputs[path.relative_to(base).as_posix()] = path
    return outputs, warnings


def failure_note(exit_code: int | None, stderr: str, code: Path) -> str:
    """A failed row's note: its exit status and the end of its stderr.

    One line of stderr follows a colon; several start on their own line, so that burst's
    remark never runs into the command's text (a traceback's first line). Paths inside the
    run's copy of the code folder are shown as the command saw them: relative.
    """
    last = tail(stderr, 5)
    for folder in {str(code), str(code.resolve())}:
        last = last.replace(f"{folder}/", "")
    quoted = f": {last}" if "\n" not in last else f"; the end of its stderr:\n{last}"
    return f"command exited with status {exit_code}" + (quoted if last else "")
