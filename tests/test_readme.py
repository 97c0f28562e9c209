"""The README and docs/ say only what is true: copied examples run, and what they name exists.

A new user copies commands from the README. Each check here reads the text as
that user would, and fails with the file, the line and what is wrong in it:
an AMI id burst itself refuses, a path in the repository that is not there, a
``burst`` command that does not exist. The README's set-up commands and its
"your own campaign" example are run for real.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path


from burst.cli.validate import check_ami
from burst.errors import UserError
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_README_LINES = 300
DEMO = "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && python dispatcher.py local demo awsjobs/demo.csv -c -d --wait"
TESTS = "bash scripts/test.sh"

# repository paths the text may name: files of these folders, in backticks, in code blocks or as links
REPO_PATH = re.compile(r"(?<![\w/.~-])(?:awsjobs|docs|scripts|burst|bench|tests)/[\w./-]*")
PLACEHOLDER = re.compile(r"[<>*…{}]|\.\.\.|/[A-Z]+\b")  # <tag>, results/**, bench/NAME.py
# what runs make (anchored patterns of .gitignore, such as /bench/out/): named, yet not in the repository
MADE_BY_RUNS = [line.strip("/") for line in (REPO / ".gitignore").read_text().split("\n") if line.startswith("/")]
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
AMI = re.compile(r"\bami-[0-9A-Za-z]+")
# a line of a code block that a reader types (not output shown there)
TYPED = re.compile(r"(?:\$ )?(?:burst|python3?|bash|pip|aws|cd|ls|cat|find|\./)\b")
# a command as written: a line or `span` that starts with it (after a "$ " prompt or "python -m ")
COMMAND = re.compile(r"^(?:\$ )?(?:python3? -m )?burst ([A-Za-z][\w-]*)")


def numbered(text: str) -> list[tuple[int, str]]:
    return list(enumerate(text.split("\n"), start=1))


def code_lines(text: str) -> list[tuple[int, str]]:
    """What a reader copies: the command lines of ``` blocks (not the output shown there), and `inline code`."""
    found, fenced = [], False
    for number, line in numbered(text):
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            if TYPED.match(line):
                found.append((number, line))
        else:
            found.extend((number, span) for span in SPAN.findall(line))
    return found


def ami_problems(name: str, text: str) -> list[str]:
    problems = []
    for number, line in numbered(text):
        for ami in AMI.findall(line):
            try:
                check_ami(ami)
            except UserError as error:
                problems.append(f"{name}:{number}: {ami} is refused by burst run: {error}")
    return problems


def path_problems(path: Path, text: str) -> list[str]:
    """Every repository path in code (relative to the repository) or a link (relative to the file) exists."""
    named = [(number, found, REPO) for number, code in code_lines(text) for found in REPO_PATH.findall(code)]
    named += [(number, target.split("#")[0], path.parent) for number, line in numbered(text)
              for target in LINK.findall(line) if not re.match(r"[a-z]+:", target) and target.split("#")[0]]
    problems = []
    for number, name, base in sorted(named, key=lambda found: found[0]):
        if PLACEHOLDER.search(name) or any(name.strip("/").startswith(made) for made in MADE_BY_RUNS):
            continue
        if not (base / name).exists():
            problems.append(f"{path.name}:{number}: `{name}` does not exist ({os.path.relpath(base / name, REPO)})")
    return problems


def burst_commands() -> set[str]:
    """The commands ``python -m burst --help`` lists."""
    helped = subprocess.run([sys.executable, "-m", "burst", "--help"], cwd=REPO, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    listing = helped.stdout.split("positional arguments:")[1].split("options:")[0]
    return set(re.findall(r"^ {4}(\w[\w-]*)", listing, flags=re.M))


def command_problems(name: str, text: str, commands: set[str]) -> list[str]:
    problems = []
    for number, line in code_lines(text):
        for word in COMMAND.findall(line):
            if word not in commands and not word.isupper():  # COMMAND, JOB: placeholders
                problems.append(f"{name}:{number}: `burst {word}` is not a burst command "
                                f"(burst --help lists: {', '.join(sorted(commands))})")
    return problems


def setup_block(text: str) -> list[str]:
    """The commands of the first code block under '## Set up'."""
    section = text.split("\n## Set up\n", 1)
    assert len(section) == 2, "README.md has no '## Set up' section"
    block = re.search(r"^```\n(.*?)^```", section[1], flags=re.M | re.S)
    assert block, "README.md's '## Set up' section has no code block"
    return [line for line in block.group(1).split("\n") if line.strip()]


def test_readme_is_a_front_door_of_at_most_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move details to docs/ (at most {MAX_README_LINES})"


def test_readme_set_up_block_holds_exactly_the_two_set_up_commands():
    assert setup_block(README.read_text(encoding="utf-8")) == [DEMO, TESTS]
    assert (REPO / "requirements.txt").exists() and (REPO / "scripts" / "test.sh").exists()
    assert "pytest" in (REPO / "scripts" / "test.sh").read_text(), "scripts/test.sh is the test command"


def test_the_set_up_demo_runs_and_fails_its_last_row_as_the_readme_says():
    """The demo part of the first set-up command (the virtualenv and pip are the test environment's)."""
    demo = shlex.split(DEMO.split(" && ")[-1])
    assert demo[0] == "python"
    done = subprocess.run([sys.executable, *demo[1:]], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stdout + done.stderr  # "Its last row fails on purpose ... exits 1"
    assert "demo: 5 rows" in done.stdout and "4 done, 1 failed" in done.stdout, done.stdout


def test_every_ami_in_readme_and_docs_passes_burst_validation():
    problems = [p for path in [README, *DOCS] for p in ami_problems(path.name, path.read_text(encoding="utf-8"))]
    assert not problems, "\n".join(problems)


def test_every_repository_path_named_in_readme_and_docs_exists():
    problems = [p for path in [README, *DOCS] for p in path_problems(path, path.read_text(encoding="utf-8"))]
    assert not problems, "\n".join(problems)


def test_every_burst_command_named_in_readme_and_docs_is_a_real_command():
    commands = burst_commands()
    assert {"run", "download", "status", "logs"} <= commands
    problems = [p for path in [README, *DOCS] for p in command_problems(path.name, path.read_text(encoding="utf-8"), commands)]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_a_broken_readme_gets_wrong():
    """Each check names the line and the fault of the mistakes the README once had."""
    broken = ("# burst\n\n## Set up\n\n```\npip install -r requirements.txt\n```\n\n"
              "```\nburst run ami-0abc123 paj17 awsjobs/micp.csv -c -d\nburst frobnicate paj17\n```\n"
              "See [the design](DESIGN.md) and `scripts/nothing.sh`.\n")
    amis = ami_problems("README.md", broken)
    assert len(amis) == 1 and amis[0].startswith("README.md:10: ami-0abc123 is refused by burst run"), amis
    assert path_problems(README, broken) == [
        "README.md:10: `awsjobs/micp.csv` does not exist (awsjobs/micp.csv)",
        "README.md:13: `scripts/nothing.sh` does not exist (scripts/nothing.sh)",
        "README.md:13: `DESIGN.md` does not exist (DESIGN.md)",
    ]
    assert [p.split(" is not")[0] for p in command_problems("README.md", broken, burst_commands())] == [
        "README.md:11: `burst frobnicate`"]
    assert setup_block(broken) != [DEMO, TESTS]


def replay_steps(text: str) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """From the README's "Your own campaign": the files it shows with `$ cat`, and each `$ burst` command with its output."""
    section = text.split("\n## Your own campaign\n", 1)[1].split("\n## ", 1)[0]
    files: dict[str, str] = {}
    commands: list[tuple[str, list[str]]] = []
    for block in re.findall(r"^```\n(.*?)^```", section, flags=re.M | re.S):
        current: list[str] | None = None
        for line in block.split("\n"):
            if line.startswith("$ "):
                current = []
                if line.startswith("$ cat "):
                    files[line[len("$ cat "):]] = current  # type: ignore[assignment]
                elif line.startswith("$ burst "):
                    commands.append((line[2:], current))
                else:
                    current = None
            elif current is not None:
                current.append(line)
    return {name: "\n".join(lines).rstrip("\n") + "\n" for name, lines in files.items()}, commands


def test_your_own_campaign_in_the_readme_runs_as_shown(tmp_path):
    """The README's example files, written out and run: each row ends as its table shows, and the merge gives the columns it reads."""
    files, commands = replay_steps(README.read_text(encoding="utf-8"))
    assert {"sweep.csv", "INSTALL.sh", "sweep/solve.py"} <= set(files), files.keys()
    folder = tmp_path / "campaign"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    outputs = {}
    for command, shown in commands:
        argv = [sys.executable, "-m", "burst", *shlex.split(command)[1:]]
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=240, env=env)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}{done.stderr}"
        outputs[command] = (done.stdout, "\n".join(shown))
    run = next(out for command, out in outputs.items() if command.startswith("burst run local"))
    shown_rows = re.findall(r"│ (\w+)\s+│ (\w+)\s+│ (\d+)\s+│", run[1])
    real_rows = re.findall(r"│ (\w+)\s+│ (\w+)\s+│ (\d+)\s+│", run[0])
    assert shown_rows and shown_rows == real_rows, run[0]
    assert "3 rows" in run[0] and "3 done" in run[0]
    with open(folder / "results" / "sweep" / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert [row["tag"] for row in merged] == ["sweep0", "sweep1", "sweep2"]
    assert [row["n"] for row in merged] == ["1000", "2000", "4000"]
    shown_columns = re.search(r"\[\[(.*?)\]\]", README.read_text(encoding="utf-8")).group(1)
    assert set(re.findall(r"'(\w+)'", shown_columns)) <= set(merged[0]), "the columns the README reads are in results.csv"
