"""Local mode keeps to itself: no secret of the dispatcher's in a sandbox, hostile values stay text, terminate ends all."""

from __future__ import annotations

import os
from pathlib import Path

from burst.providers.local import SandboxRegistry
from tests.conftest import REPO, run_script, statuses, wait_until, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")
SECRET = "burst-test-secret-0d6f1a9c"
GIVEN = "burst-test-given-token-7e21"  # passed on purpose with --env


def sandbox_ids(burst_home: Path, job: str) -> list[str]:
    with SandboxRegistry(burst_home).locked() as registry:
        return [i for i, r in registry.items() if r["job"] == job]


def processes_of(instance_id: str) -> list[int]:
    """Every process on this machine that carries the sandbox's id in its environment."""
    marker = f"BURST_INSTANCE_ID={instance_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


def test_no_secret_of_the_dispatcher_reaches_a_sandbox_and_env_does(tmp_path, burst_home, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    monkeypatch.setenv("FROM_HERE", "passed by name")
    monkeypatch.setenv("TOKEN", GIVEN)
    jobfile, install = write_campaign(
        tmp_path, [("t3.micro", "mkdir -p results; env > results/env.txt; echo \"$FOO|$FROM_HERE|$TAG\" > results/foo.txt")] * 2,
        install="#!/bin/bash\nenv > ../install-env.txt\necho \"install sees $FOO\"\n")
    result = run_script(DISPATCHER, "local", "clean", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--env", "FOO=bar baz", "--env", "FROM_HERE", "--env", "TOKEN", "--machines", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    bucket = burst_home / "buckets" / "clean"
    for tag in ("clean0", "clean1"):
        assert (bucket / tag / "attempts/1/results/foo.txt").read_text() == f"bar baz|passed by name|{tag}\n"
        names = {line.split("=", 1)[0] for line in (bucket / tag / "attempts/1/results/env.txt").read_text().splitlines()}
        assert not {n for n in names if n.startswith("AWS_")} and "GITHUB_TOKEN" not in names
        assert {"PATH", "HOME", "TAG", "JOB", "FOO", "TOKEN"} <= names
    (install_log,) = bucket.glob("machines/*/install.log")
    assert "install sees bar baz" in install_log.read_text()
    (install_env,) = (burst_home / "instances").glob("*/burst/clean/*/install-env.txt")
    assert "FOO=bar baz" in install_env.read_text()
    given = [path for path in burst_home.rglob("*") if path.is_file() and GIVEN.encode() in path.read_bytes()]
    assert '"TOKEN": "(not kept in the bucket)"' in (bucket / "campaign.json").read_text(), "--env values stay out of the bucket"
    for path in given:  # a value given with --env is in the results (env.txt), node.env and the local record only
        assert path.name in ("env.txt", "install-env.txt", "node.env", "clean.json"), path
    leaks = [path for path in burst_home.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
    assert leaks == [], "the dispatcher's secret reached these files"


def test_a_hostile_node_root_is_a_folder_name_and_logs_quote_it(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo hello from $TAG; sleep 300")])
    hostile = "x$(touch PWNED)`touch PWNED2`;touch PWNED3"
    result = run_script(DISPATCHER, "local", "quote", str(jobfile), "-c", "-d", "--install", str(install),
                        "--node-root", hostile)
    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: statuses("quote")["quote0"]["state"] == "running", what="the row running")
    (instance_id,) = sandbox_ids(burst_home, "quote")
    home = SandboxRegistry(burst_home).home_of(instance_id)
    assert (home / hostile / "quote" / instance_id / "node.json").is_file()
    # the row runs: its stdout is not in the bucket yet, so `logs` reads it from the machine with cat
    logs = wait_until(lambda: (r := run_script("-m", "burst", "logs", "quote", "quote0")).returncode == 0
                      and "hello from quote0" in r.stdout and r, what="stdout read from the machine")
    assert "hello from quote0" in logs.stdout
    assert run_script("-m", "burst", "terminate", "quote").returncode == 0
    made = [p for root in (home, tmp_path) for p in root.rglob("PWNED*")] + list(REPO.glob("PWNED*"))
    assert made == [], "a value was executed as shell code"


def test_terminate_ends_background_and_nohup_children_of_a_command(tmp_path, burst_home):
    command = ("sleep 301 & nohup sleep 302 > /dev/null 2>&1 & setsid sleep 303 & "
               "(trap '' TERM; sleep 304) & echo started > $HOME/started-$TAG; sleep 305")
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)] * 2,
                                      install="#!/bin/bash\nnohup sleep 306 > /dev/null 2>&1 &\n")
    result = run_script(DISPATCHER, "local", "bgjob", str(jobfile), "-c", "-d", "--install", str(install), "--machines", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_until(lambda: len(list((burst_home / "instances").glob("*/started-*"))) == 2, what="both commands started")
    ids = sandbox_ids(burst_home, "bgjob")
    assert len(ids) == 2 and all(len(processes_of(i)) >= 7 for i in ids)

    terminated = run_script("-m", "burst", "terminate", "bgjob")
    assert terminated.returncode == 0 and "terminated 2 machine(s)" in terminated.stdout, terminated.stdout
    for instance_id in ids:
        assert processes_of(instance_id) == [], f"processes of {instance_id} outlived terminate"


def test_a_sandbox_that_ends_itself_leaves_no_background_process(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "sleep 311 & nohup sleep 312 > /dev/null 2>&1 & echo ok")],
                                      install="#!/bin/bash\nnohup sleep 313 > /dev/null 2>&1 &\n")
    result = run_script(DISPATCHER, "local", "selfend", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert result.returncode == 0, result.stdout + result.stderr
    (instance_id,) = sandbox_ids(burst_home, "selfend")
    wait_until(lambda: processes_of(instance_id) == [], timeout=30, what="every process of the sandbox ended")
    assert os.environ.get("BURST_INSTANCE_ID") is None


def test_outputs_never_leave_the_rows_folder_and_everything_under_burst_home_is_private(tmp_path, burst_home):
    """``keys -> /outside`` with ``--results 'keys/*'``: nothing of outside is saved, a note says so; a link to a
    file inside the row's copy is saved as that file. And ~/.burst is 0700, every file under it 0600."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("PRIVATE KEY\n")
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "mkdir -p results; echo 42 > results/a.txt; "
                                                              "ln -s ../data.csv results/data.csv; ln -s /etc/hostname results/host")],
                                      code_files={"data.csv": "x,y\n1,2\n"})
    (tmp_path / "jobs" / "keys").symlink_to(outside)
    burst_home.mkdir(mode=0o755)  # as an older burst left it
    result = run_script(DISPATCHER, "local", "links", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--results", "keys/*", "--results", "results/**")
    assert result.returncode == 0, result.stdout + result.stderr
    saved = burst_home / "buckets" / "links" / "links0" / "attempts" / "1" / "results"
    assert sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*")) == ["a.txt", "data.csv"]
    assert (saved / "data.csv").read_text() == "x,y\n1,2\n" and not (saved / "data.csv").is_symlink()
    assert not [p for p in burst_home.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    (row,) = statuses("links").values()
    assert any("keys/id_rsa" in w and "outside the row's folder" in w for w in row["warnings"]), row["warnings"]
    assert any("results/host" in w for w in row["warnings"]), row["warnings"]

    assert oct(burst_home.stat().st_mode & 0o777) == "0o700"
    wide = [(oct(p.lstat().st_mode & 0o777), p) for p in burst_home.rglob("*")
            if not p.is_symlink() and p.lstat().st_mode & 0o077]
    assert wide == [], wide[:10]
