"""What a run will do, checked and shown before anything is launched.

Two offline checks catch the mistakes that otherwise cost a paid launch that
fails every row: a command whose script is not in the code folder
(``python3 solve.py`` with no ``solve.py``), and an instance type that is not one
(``t3.mikro``; botocore's EC2 model lists every type, no AWS call needed). Both
raise ``UserError`` naming the job file's line; ``--no-check`` skips them (a
script INSTALL.sh builds, a type newer than this botocore).

``preflight_lines`` is the block every run and ``--dry-run`` prints first: the
job file and its rows per type, the code folder, INSTALL.sh, the results
patterns, the pool (machines × slots) per type, and on EC2 the AMI and its login user.
"""

from __future__ import annotations

import difflib
import functools
import re
import shlex
from collections import Counter
from pathlib import Path

from burst.cli.console import counted
from burst.errors import UserError
from burst.records import Job

# interpreter -> (options after which no script follows: the code is inline or a module,
#                 options that take the next word as their value)
INTERPRETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "python": (frozenset({"-c", "-m", "-"}), frozenset({"-W", "-X"})),
    "bash": (frozenset({"-c", "-s", "-"}), frozenset({"-o", "-O", "--rcfile", "--init-file"})),
    "julia": (frozenset({"-e", "-E", "--eval", "--print", "-"}),
              frozenset({"-t", "-p", "--threads", "--procs", "-J", "--sysimage", "-L", "--load", "-C"})),
    "Rscript": (frozenset({"-e", "-"}), frozenset()),
    "perl": (frozenset({"-e", "-E", "-"}), frozenset()),
    "ruby": (frozenset({"-e", "-"}), frozenset({"-r", "-I"})),
    "node": (frozenset({"-e", "-p", "--eval", "--print", "-"}), frozenset({"-r", "--require"})),
}
_ALIASES = {"sh": "bash", "dash": "bash", "zsh": "bash", "pypy": "python", "pypy3": "python", "R": "Rscript"}
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
_SHELL_MAGIC = set("$`*?[{~<>|;&()")


def _interpreter(word: str) -> str | None:
    name = word.rsplit("/", 1)[-1] if word.startswith("/usr/") or word.startswith("/bin/") else word
    if _PYTHON.fullmatch(name):
        return "python"
    name = _ALIASES.get(name, name)
    return name if name in INTERPRETERS else None


def command_file(command: str) -> str | None:
    """The file in the code folder that ``command`` runs first, if its first words name one.

    ``python3 -u solve.py``, ``bash run.sh``, ``./bin/x``, ``julia x.jl``, ``Rscript x.R``
    (after any ``NAME=value`` words). None when the command names no such file, or names it
    in a way only the shell resolves (variables, globs, absolute paths: those live on the machine).
    """
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and _ASSIGNMENT.fullmatch(words[0]):
        words = words[1:]
    if not words:
        return None
    first, rest = words[0], words[1:]
    kind = _interpreter(first)
    if kind is None:
        return first if "/" in first and _local_path(first) else None
    stops, takes_value = INTERPRETERS[kind]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option == "--":
            break
        name = option.split("=", 1)[0]
        short_letters = option[1:] if not option.startswith("--") else ""
        if name in stops or (kind == "python" and any(f"-{c}" in stops for c in short_letters)):
            return None
        if name in takes_value and "=" not in option and rest:
            rest.pop(0)
    return rest[0] if rest and _local_path(rest[0]) else None


def _local_path(word: str) -> bool:
    return bool(word) and not word.startswith("/") and not (set(word) & _SHELL_MAGIC)


def check_command_files(jobs: list[Job], job_file: Path, code_dir: Path | None, default_code_dir: Path) -> None:
    """Refuse rows whose command runs a file that is not in the code folder (exit 2, nothing created)."""
    missing = [(job, name) for job in jobs if (name := command_file(job.command))
               and (code_dir is None or not (code_dir / name).exists())]
    if not missing:
        return
    job, name = missing[0]
    more = f" ({len(missing) - 1} more row(s) alike)" if len(missing) > 1 else ""
    skip = "or add --no-check if INSTALL.sh creates it."
    if code_dir is None:
        raise UserError(
            f"{job_file}:{job.line}: `{job.command}` runs {name}, but there is no code folder: "
            f"{default_code_dir} (the job file's name without .csv) does not exist and no --code was given{more}. "
            f"Put {name} in {default_code_dir}/, give the folder that holds it with --code FOLDER, {skip}"
        )
    raise UserError(
        f"{job_file}:{job.line}: `{job.command}` runs {name}, which is not in the code folder {code_dir}{more}. "
        f"Commands run inside a copy of that folder: put {name} there, fix the command, {skip}"
    )


@functools.lru_cache(maxsize=1)
def ec2_instance_types() -> frozenset[str]:
    """Every instance type botocore's EC2 service model knows (its ``InstanceType`` enum), read offline."""
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


def check_instance_types(jobs: list[Job], job_file: Path) -> None:
    """Refuse a type EC2 does not have (``t3.mikro``), with the closest one; locally too, so a local
    trial run catches what would fail on EC2."""
    known = ec2_instance_types()
    for job in jobs:
        if job.instance_type in known:
            continue
        lowered = job.instance_type.lower()
        close = [lowered] if lowered in known else difflib.get_close_matches(job.instance_type, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "name one such as t3.micro or c5.large."
        import botocore

        raise UserError(
            f"{job_file}:{job.line}: instance type {job.instance_type!r} is not an EC2 instance type: {hint} "
            f"Fix it in the job file. (botocore {botocore.__version__} knows {len(known)} types; for a type newer "
            f"than it, upgrade it with pip install -U boto3, or skip this check with --no-check.)"
        )


def preflight_lines(*, job_file: str, jobs: list[Job], code_dir: str, install_file: str, results: list[str],
                    machines: dict[str, int], slots: str, local: bool, image: str, user: str | None) -> list[str]:
    """The block printed before anything is launched."""
    per_type = Counter(job.instance_type for job in jobs)
    noun = "sandbox" if local else "machine"
    slot_text = "slots = its vCPUs" if slots == "auto" else counted(int(slots), "slot")
    lines = [
        "preflight:",
        f"  job file  {job_file}: {counted(len(jobs), 'row')} ("
        + ", ".join(f"{n} × {t}" for t, n in sorted(per_type.items())) + ")",
        f"  code      {code_dir or 'none (commands run in an empty folder)'}",
        f"  install   {install_file or 'none (no INSTALL.sh here or beside the job file, and no --install)'}",
        f"  results   {' '.join(results) if results else 'none'}",
        "  pool      " + ", ".join(f"{t}: {counted(machines[t], noun)} × {slot_text}"
                                   for t in sorted(per_type)),
    ]
    if not local:
        lines.append(f"  AMI       {image} (login user {user or 'unknown'})")
    return lines
