"""The job CSV: what is accepted, and one clear message (exit 2, nothing created) for each mistake."""

from __future__ import annotations

import pytest

from burst.control.jobs import read_jobs
from burst.errors import UserError
from tests.conftest import REPO, run_script


def write(tmp_path, text: str | bytes, name: str = "jobs.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_rows_become_jobs_with_tags_from_the_offset(tmp_path):
    path = write(tmp_path, "instance_type,command\nc5.large,./run --n 1\n  m5.xlarge ,  ./run --n 2\n")
    jobs = read_jobs(path, "paj17", tag_offset=3)
    assert [(j.tag, j.instance_type, j.command, j.line) for j in jobs] == [
        ("paj173", "c5.large", "./run --n 1", 2),
        ("paj174", "m5.xlarge", "./run --n 2", 3),
    ]


def test_bom_spaces_quotes_blank_lines_and_comments_are_tolerated(tmp_path):
    text = (
        "\ufeff instance_type , command \n"
        "\n"
        "t3.micro,\"python3 x.py --label \"\"a, b\"\" --v $HOME\"\n"
        "# t3.micro,disabled job\n"
        "t3.micro,echo héllo\n"
    )
    jobs = read_jobs(write(tmp_path, text), "demo")
    assert [j.command for j in jobs] == ['python3 x.py --label "a, b" --v $HOME', "echo héllo"]
    assert [j.line for j in jobs] == [3, 5]
    assert [j.tag for j in jobs] == ["demo0", "demo1"]


BAD_FILES = {
    "empty file": ("", "is empty"),
    "header only": ("instance_type,command\n", "no jobs"),
    "wrong column": ("instance,command\nt3.micro,ls\n", "line 1: header is 'instance,command' (missing 'instance_type'; unexpected 'instance')"),
    "missing column": ("instance_type\nt3.micro\n", "line 1: header is 'instance_type' (missing 'command')"),
    "extra column": ("instance_type,command,notes\nt3.micro,ls,x\n", "unexpected 'notes'"),
    "columns swapped": ("command,instance_type\nls,t3.micro\n", "columns out of order"),
    "too many fields": ("instance_type,command\nt3.micro,ls\nt3.micro,echo a,b\n", "line 3: too many fields (3, expected 2"),
    "too few fields": ("instance_type,command\nt3.micro\n", "line 2: too few fields (1, expected 2"),
    "empty command": ("instance_type,command\nt3.micro,  \n", "line 2: empty command"),
    "empty instance type": ("instance_type,command\n,ls\n", "line 2: empty instance_type"),
    "instance type with a space": ("instance_type,command\nt3 micro,ls\n", "line 2: instance_type 't3 micro'"),
    "unclosed quote": ("instance_type,command\nt3.micro,\"echo a\n", "line 2: unexpected end of data"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_csv_is_one_clear_message_with_file_and_line(tmp_path, case):
    text, expected = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(UserError) as raised:
        read_jobs(path, "demo")
    message = str(raised.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message.strip()


def test_file_that_is_not_utf8_names_the_fix(tmp_path):
    path = write(tmp_path, b"instance_type,command\nt3.micro,echo \xff\n")
    with pytest.raises(UserError, match="not UTF-8.*save the job file as UTF-8"):
        read_jobs(path, "demo")


@pytest.mark.parametrize("name,suggestion", [("My_Job", "my-job"), ("ab", "ab-job"), ("x" * 70, "x" * 63), ("-lead", "lead")])
def test_job_name_must_be_a_bucket_name_and_a_fix_is_suggested(tmp_path, name, suggestion):
    path = write(tmp_path, "instance_type,command\nt3.micro,ls\n")
    with pytest.raises(UserError) as raised:
        read_jobs(path, name)
    assert "cannot be a bucket name" in str(raised.value)
    assert f"Try {suggestion!r}" in str(raised.value)


def test_negative_tag_offset_is_refused(tmp_path):
    with pytest.raises(UserError, match="--tag-offset -1 is negative"):
        read_jobs(write(tmp_path, "instance_type,command\nt3.micro,ls\n"), "demo", tag_offset=-1)


def test_missing_job_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_jobs(tmp_path / "nope.csv", "demo")


CLI_MISTAKES = {
    "bad csv": (["local", "demo", "{bad}", "-c", "-d"], "line 3: too many fields"),
    "bad job name": (["local", "Demo_1", "{good}", "-c", "-d"], "'Demo_1' cannot be a bucket name"),
    "missing job file": (["local", "demo", "{missing}", "-c"], "does not exist"),
    "missing INSTALL.sh": (["local", "demo", "{good}", "-c", "--install", "{missing}"], "install script"),
    "missing code folder": (["local", "demo", "{good}", "-c", "--code", "{missing}"], "code folder"),
    "negative tag offset": (["local", "demo", "{good}", "-c", "--tag-offset", "-2"], "--tag-offset -2 is negative"),
    "nothing to do": (["local", "demo", "{good}"], "nothing to do: add -c"),
    "wait without dispatch": (["local", "demo", "{good}", "-c", "--wait"], "use it with -d"),
    "absolute results glob": (["local", "demo", "{good}", "-c", "--results", "/etc/*"], "relative to the code folder"),
}


@pytest.mark.parametrize("case", sorted(CLI_MISTAKES))
def test_dispatcher_refuses_bad_input_with_exit_2_and_creates_nothing(tmp_path, burst_home, case):
    argv, expected = CLI_MISTAKES[case]
    files = {
        "good": write(tmp_path, "instance_type,command\nt3.micro,ls\n", "good.csv"),
        "bad": write(tmp_path, "instance_type,command\nt3.micro,ls\nt3.micro,echo a,b\n", "bad.csv"),
        "missing": tmp_path / "missing",
    }
    argv = [a.format(**files) for a in argv]
    result = run_script(str(REPO / "dispatcher.py"), *argv)
    assert result.returncode == 2, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not burst_home.exists() or not any(burst_home.rglob("*")), "nothing may be created on bad input"
