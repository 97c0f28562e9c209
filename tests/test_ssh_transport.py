"""SSHTransport against a real OpenSSH sshd on 127.0.0.1 (see tests/sshd.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from burst.transport.base import CommandFailed
from burst.transport.ssh import (
    SSHAuthenticationFailed,
    SSHError,
    SSHHostKeyChanged,
    SSHTarget,
    SSHTransport,
    SSHUnreachable,
    resolve_target,
)
from tests.sshd import (  # noqa: F401  (fixtures)
    SSHServer,
    free_port,
    make_keypair,
    node_env,
    ssh_config_for,
    ssh_keypair,
    sshd_factory,
    sshd_server,
    write_ssh_config,
)

BOOTSTRAP = Path(__file__).resolve().parent.parent / "burst" / "node" / "bootstrap.sh"
VENV_BIN = str(Path(sys.executable).parent)


def target_for(server: SSHServer, key: Path) -> SSHTarget:
    return SSHTarget("127.0.0.1", server.port, server.user, [str(key)])


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "campaign" / "known_hosts"


@pytest.fixture
def connect(known_hosts: Path):
    """``connect(server, key, **kwargs)`` -> a connected SSHTransport, closed at teardown."""
    opened: list[SSHTransport] = []

    def make(server: SSHServer, key: Path, **kwargs) -> SSHTransport:
        kwargs.setdefault("connect_timeout", 20)
        transport = SSHTransport(target_for(server, key), known_hosts=known_hosts, where="tag t0 (127.0.0.1)", **kwargs)
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        transport.close()


@pytest.fixture
def node(sshd_server, ssh_keypair, connect) -> SSHTransport:
    return connect(sshd_server, ssh_keypair.private_path)


# ---------------------------------------------------------------- commands


def test_run_returns_output_error_and_exit(node):
    result = node.run("echo out; echo err >&2")
    assert (result.exit, result.out, result.err) == (0, "out\n", "err\n")
    assert result.ok


def test_nonzero_exit_raises_command_failed_with_command_and_output_tail(node):
    with pytest.raises(CommandFailed) as caught:
        node.run("echo starting; for i in $(seq 1 30); do echo line$i >&2; done; exit 3")
    message = str(caught.value)
    assert caught.value.result.exit == 3
    assert "tag t0 (127.0.0.1)" in message and "exit 3" in message and "status 3" in message
    assert "line30" in message and "line1\n" not in message  # only the tail


def test_check_false_returns_the_exit_status(node):
    assert node.run("exit 7", check=False).exit == 7


def test_quotes_variables_commas_and_non_ascii_survive(node):
    cmd = """X='it'"'"'s $HOME, "quoted"'; printf '%s|%s|%s\\n' "$X" "a,b,c" "héllo ✓ naïve"; echo "$((6*7))" """
    assert node.run(cmd).out == """it's $HOME, "quoted"|a,b,c|héllo ✓ naïve\n42\n"""


def test_commands_run_in_bash_in_the_home_folder_with_the_servers_environment(node, sshd_server):
    out = node.run('echo "$BASH_VERSION"; pwd; command -v python3').out.splitlines()
    assert out[0]  # bash, whatever the login shell
    assert out[1] == str(sshd_server.home)
    assert out[2] == os.path.join(VENV_BIN, "python3")  # SetEnv PATH reached the command


def test_commands_get_no_stdin(node):
    assert node.run("cat; echo end", timeout=20).out == "end\n"


def test_megabytes_on_stdout_and_stderr_do_not_deadlock(node):
    cmd = "for i in $(seq 1 1500); do printf '%2000s\\n' o; printf '%2000s\\n' e >&2; done"
    result = node.run(cmd, timeout=60)
    assert len(result.out) == len(result.err) == 1500 * 2001


def test_timeout_raises_naming_host_and_command_and_the_connection_stays_usable(node):
    with pytest.raises(TimeoutError) as caught:
        node.run("sleep 30", timeout=0.5)
    assert "tag t0 (127.0.0.1)" in str(caught.value) and "sleep 30" in str(caught.value)
    assert node.run("echo still here").out == "still here\n"


def test_detached_script_outlives_the_connection(node, tmp_path):
    folder = tmp_path / "detached"
    folder.mkdir()
    (folder / "job.sh").write_text("sleep 0.3; echo finished > done.txt\n")
    node.start_detached("job.sh", str(folder), "job.log")
    node.close()
    deadline = time.monotonic() + 20
    while not (folder / "done.txt").exists():
        assert time.monotonic() < deadline, "the detached script did not finish"
        time.sleep(0.05)
    assert (folder / "done.txt").read_text() == "finished\n"


# ---------------------------------------------------------------- files


def test_put_and_get_round_trip_keeps_content_and_mode(node, tmp_path):
    local = tmp_path / "run.sh"
    local.write_bytes(b"#!/bin/sh\necho hi\n" + bytes(range(256)))
    local.chmod(0o750)
    remote = tmp_path / "remote" / "deep" / "er" / "run.sh"
    node.put(local, str(remote))
    assert node.run(f"stat -c %a {remote}").out.strip() == "750"
    assert remote.read_bytes() == local.read_bytes()

    back = tmp_path / "back" / "run.sh"
    node.get(str(remote), back)
    assert back.read_bytes() == local.read_bytes()
    assert stat.S_IMODE(back.stat().st_mode) == 0o750


def test_get_of_a_missing_file_raises(node, tmp_path):
    with pytest.raises(FileNotFoundError, match="tag t0"):
        node.get(str(tmp_path / "nope.txt"), tmp_path / "local.txt")


def test_put_dir_copies_the_tree_and_skips_caches(node, tmp_path):
    src = tmp_path / "code"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (src / "empty").mkdir()
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "main.sh").write_text("echo main\n")
    (src / "main.sh").chmod(0o755)

    dest = tmp_path / "node" / "code"
    node.put_dir(src, str(dest))
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    assert copied == ["empty", "main.sh", "pkg", "pkg/mod.py"]
    assert os.access(dest / "main.sh", os.X_OK)
    node.put_dir(src, str(dest))  # again, over an existing tree


def test_relative_remote_paths_are_relative_to_the_login_home(node, sshd_server, tmp_path):
    folder = f"burst-test-{uuid.uuid4().hex[:12]}"
    local = tmp_path / "f.txt"
    local.write_text("home\n")
    try:
        node.put(local, f"{folder}/sub/f.txt")
        assert (sshd_server.home / folder / "sub" / "f.txt").read_text() == "home\n"
        assert node.run(f"cat {folder}/sub/f.txt").out == "home\n"
        node.put_dir(tmp_path, f"{folder}/tree")
        assert (sshd_server.home / folder / "tree" / "f.txt").exists()
        node.get(f"{folder}/sub/f.txt", tmp_path / "again.txt")
        assert (tmp_path / "again.txt").read_text() == "home\n"
    finally:
        shutil.rmtree(sshd_server.home / folder, ignore_errors=True)


# ---------------------------------------------------------------- host keys


def test_known_hosts_is_created_private_with_the_server_key_and_reused(sshd_server, ssh_keypair, connect, known_hosts):
    connect(sshd_server, ssh_keypair.private_path).close()
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    lines = known_hosts.read_text().splitlines()
    assert lines == [f"[127.0.0.1]:{sshd_server.port} {sshd_server.host_public_key}"]

    assert connect(sshd_server, ssh_keypair.private_path).run("echo again").out == "again\n"
    assert known_hosts.read_text().splitlines() == lines
    user_known_hosts = sshd_server.home / ".ssh" / "known_hosts"
    assert not user_known_hosts.exists() or str(sshd_server.port) not in user_known_hosts.read_text()


def test_a_changed_host_key_is_refused(sshd_factory, ssh_keypair, connect, known_hosts):
    first = sshd_factory(env=node_env())
    first.authorize(ssh_keypair.public_text)
    connect(first, ssh_keypair.private_path).close()
    first.stop()

    impostor = sshd_factory(env=node_env(), port=first.port)  # same address, new host key
    impostor.authorize(ssh_keypair.public_text)
    with pytest.raises(SSHHostKeyChanged) as caught:
        connect(impostor, ssh_keypair.private_path)
    message = str(caught.value)
    assert "tag t0" in message and str(known_hosts) in message and str(first.port) in message


def test_parallel_connections_share_the_known_hosts_file(sshd_factory, ssh_keypair, connect, known_hosts):
    servers = [sshd_factory(env=node_env()) for _ in range(4)]
    for server in servers:
        server.authorize(ssh_keypair.public_text)
    errors: list[BaseException] = []

    def reach(server: SSHServer) -> None:
        try:
            connect(server, ssh_keypair.private_path).run("true")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reach, args=(server,)) for server in servers * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    recorded = sorted(known_hosts.read_text().splitlines())
    assert recorded == sorted(f"[127.0.0.1]:{s.port} {s.host_public_key}" for s in servers)


# ---------------------------------------------------------------- connecting


def test_a_server_that_starts_late_is_reached(sshd_factory, ssh_keypair, connect):
    server = sshd_factory(env=node_env(), start=False)
    server.authorize(ssh_keypair.public_text)
    timer = threading.Timer(1.5, server.start)
    timer.start()
    try:
        assert connect(server, ssh_keypair.private_path, connect_timeout=30).run("echo up").out == "up\n"
    finally:
        timer.cancel()
        timer.join()


def test_nothing_listening_gives_up_after_the_connect_timeout(ssh_keypair, known_hosts):
    port = free_port()
    target = SSHTarget("127.0.0.1", port, "root", [str(ssh_keypair.private_path)])
    with pytest.raises(SSHUnreachable) as caught:
        SSHTransport(target, known_hosts=known_hosts, where="tag t9 (127.0.0.1)", connect_timeout=1.5)
    message = str(caught.value)
    assert "tag t9 (127.0.0.1)" in message and f"127.0.0.1 port {port}" in message
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, SSHError)


def test_a_wrong_key_fails_with_a_clear_error_well_before_the_connect_timeout(sshd_server, connect, tmp_path):
    stranger = make_keypair(tmp_path / "other", "id_rsa", "rsa")
    with pytest.raises(SSHAuthenticationFailed) as caught:
        connect(sshd_server, stranger.private_path, connect_timeout=300, auth_grace=1.0)
    message = str(caught.value)
    assert sshd_server.user in message and str(stranger.private_path) in message and "127.0.0.1" in message


def test_a_missing_key_file_is_named(sshd_server, connect, tmp_path):
    with pytest.raises(SSHError, match="does not exist") as caught:
        connect(sshd_server, tmp_path / "no-such-key.pem")
    assert str(tmp_path / "no-such-key.pem") in str(caught.value)


# ---------------------------------------------------------------- ssh config


def test_resolve_target_defaults_without_ssh_config():
    target = resolve_target(["", "ec2-1-2-3-4.compute.amazonaws.com", "i-0abc"], user="ubuntu", key_file="k.pem", ssh_config=None)
    assert target == SSHTarget("ec2-1-2-3-4.compute.amazonaws.com", 22, "ubuntu", ["k.pem"])


def test_resolve_target_honours_an_ssh_config_host_pattern(tmp_path):
    config = write_ssh_config(
        tmp_path / "ssh_config",
        {
            "i-*": {"HostName": "127.0.0.1", "Port": 2222, "User": "tester", "IdentityFile": "~/keys/node.pem"},
            "*": {"User": "fallback"},
        },
    )
    names = ["1.2.3.4", "ec2-1-2-3-4.compute.amazonaws.com", "i-0abc"]
    target = resolve_target(names, user="ubuntu", key_file="job.pem", ssh_config=str(config))
    assert target == SSHTarget("127.0.0.1", 2222, "tester", [os.path.expanduser("~/keys/node.pem")])

    unmatched = write_ssh_config(tmp_path / "other_config", {"bastion-*": {"HostName": "10.0.0.1", "Port": 2200}})
    target = resolve_target(names, user="ubuntu", key_file="job.pem", ssh_config=str(unmatched))
    assert target == SSHTarget("1.2.3.4", 22, "ubuntu", ["job.pem"])

    star_only = write_ssh_config(tmp_path / "star_config", {"*": {"User": "admin", "Port": 2201}})
    target = resolve_target(names, user="ubuntu", key_file="job.pem", ssh_config=str(star_only))
    assert target == SSHTarget("1.2.3.4", 2201, "admin", ["job.pem"])


def test_an_ssh_config_leads_to_the_server(sshd_server, ssh_keypair, known_hosts, tmp_path):
    config = ssh_config_for(tmp_path / "ssh_config", sshd_server, ssh_keypair.private_path, pattern="i-*")
    target = resolve_target(["203.0.113.9", "i-0123456789"], user="ubuntu", key_file=None, ssh_config=str(config))
    transport = SSHTransport(target, known_hosts=known_hosts, where="tag t1 (i-0123456789)", connect_timeout=20)
    try:
        assert transport.run("echo via config").out == "via config\n"
    finally:
        transport.close()


# ---------------------------------------------------------------- bootstrap.sh


def test_bootstrap_installs_nothing_when_a_python3_of_3_9_or_later_is_there(node, tmp_path):
    remote = tmp_path / "node" / "bootstrap.sh"
    node.put(BOOTSTRAP, str(remote))
    chosen = tmp_path / "node" / "python.path"
    result = node.run(f"export PATH={VENV_BIN}:/usr/bin:/bin; bash {remote} {chosen}")
    assert result.exit == 0
    assert "nothing to install: the worker runs on " in result.out and "with its own packages" in result.out
    assert chosen.read_text().strip() == str(Path(VENV_BIN) / "python3")


def _fake_machine(tmp_path, python_version: str) -> tuple[Path, Path]:
    """A PATH of its own: a python3 that says ``python_version``, an apt-get that only records its arguments."""
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    calls = tmp_path / "apt-calls.txt"
    major, minor = (int(n) for n in python_version.split(".")[:2])
    old = "1" if (major, minor) < (3, 9) else "0"
    (fake_bin / "python3").write_text(f'#!/bin/sh\n[ "$1" = -c ] && exit {old}\necho "Python {python_version}"\n')
    (fake_bin / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    for tool in fake_bin.iterdir():
        tool.chmod(0o755)
    for tool in ("env", "id", "seq", "sleep", "cat"):
        (fake_bin / tool).symlink_to(shutil.which(tool))
    return fake_bin, calls


def test_bootstrap_installs_python3_only_when_the_machine_s_is_older_than_3_9_and_says_so(node, tmp_path):
    fake_bin, calls = _fake_machine(tmp_path, "3.7.16")
    result = node.run(f"export PATH={fake_bin}; /bin/bash {BOOTSTRAP} {tmp_path / 'python.path'}", check=False)
    assert "python3 (Python 3.7.16) is older than 3.9: installing a newer python3" in result.out
    assert "running: apt-get install -y python3" in result.out
    recorded = calls.read_text().splitlines()
    assert recorded[0].endswith("update") and recorded[1].endswith("install -y --no-install-recommends python3")
    # this apt-get installs nothing: the bootstrap says so instead of starting a worker that cannot run
    assert result.exit != 0
    assert "no python3 >= 3.9 after installing one; the AMI needs a python3 >= 3.9" in result.err
    assert not (tmp_path / "python.path").exists()


# ---------------------------------------------------------------- host keys by machine


def test_host_keys_are_known_by_machine_so_a_reused_address_is_a_new_machine(sshd_factory, ssh_keypair, known_hosts):
    def connect_as(server: SSHServer, machine: str) -> SSHTransport:
        return SSHTransport(target_for(server, ssh_keypair.private_path), known_hosts=known_hosts,
                            where=f"machine {machine}", connect_timeout=20, host_key_alias=machine)

    first = sshd_factory(env=node_env())
    first.authorize(ssh_keypair.public_text)
    connect_as(first, "i-0000000000000aaaa").close()
    first.stop()

    later = sshd_factory(env=node_env(), port=first.port)  # AWS gave the address to another machine
    later.authorize(ssh_keypair.public_text)
    transport = connect_as(later, "i-0000000000000bbbb")
    assert transport.run("echo reached").out == "reached\n"
    transport.close()
    assert sorted(known_hosts.read_text().splitlines()) == [
        f"i-0000000000000aaaa {first.host_public_key}", f"i-0000000000000bbbb {later.host_public_key}"]

    with pytest.raises(SSHHostKeyChanged) as caught:  # the first machine's key changed: refused
        connect_as(later, "i-0000000000000aaaa")
    assert "i-0000000000000aaaa" in str(caught.value) and str(known_hosts) in str(caught.value)
    again = connect_as(later, "i-0000000000000bbbb")  # and the known one still connects
    assert again.run("true").ok
    again.close()


# ---------------------------------------------------------------- hostile values stay text


def test_the_dispatchers_shell_lines_quote_hostile_values(node, sshd_server):
    from burst.control.bundle import probe_command, start_worker_command

    folder = f"burst-test-quoting-{uuid.uuid4().hex[:8]}"  # in the login home: only this folder is ours
    hostile = f"{folder}/x$(touch PWNED1)`touch PWNED2`;touch PWNED3 'q\"/job/i-1"
    try:
        assert node.run(probe_command(hostile)).out.split() == ["NEW"]
        node.run(f"mkdir -p {shlex.quote(hostile)}")
        node.run(start_worker_command(hostile))  # no worker.sh there: the detached start fails, harmlessly
        assert node.run(f"ls {shlex.quote(hostile)}").out.split() == ["start-worker"]
        made = list(sshd_server.home.glob("PWNED*")) + list((sshd_server.home / folder).rglob("PWNED*"))
        assert made == [], "a value was run as shell code"
    finally:
        shutil.rmtree(sshd_server.home / folder, ignore_errors=True)


# ---------------------------------------------------------------- bastions


@pytest.fixture
def bastion_and_node(sshd_factory, ssh_keypair, tmp_path):
    """Two real sshds: a machine, and a bastion in front of it (both take the job's key)."""
    machine = sshd_factory(env=node_env(BURST_WHO="the machine"))
    bastion = sshd_factory(env=node_env(BURST_WHO="the bastion"))
    for server in (machine, bastion):
        server.authorize(ssh_keypair.public_text)
    return bastion, machine


def logins(server: SSHServer) -> int:
    return server.log_path.read_text(errors="replace").count("Accepted publickey")


@pytest.mark.parametrize("how", ["ProxyJump", "ProxyCommand"])
def test_a_machine_behind_a_bastion_is_reached_through_it(bastion_and_node, ssh_keypair, known_hosts, tmp_path, how):
    bastion, machine = bastion_and_node
    key = str(ssh_keypair.private_path)
    through = {"ProxyJump": {"ProxyJump": "bastion"},
               "ProxyCommand": {"ProxyCommand": f"ssh -F {tmp_path / 'ssh_config'} -o BatchMode=yes "
                                                f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={tmp_path / 'kh'} "
                                                f"-W %h:%p bastion"}}[how]
    config = write_ssh_config(tmp_path / "ssh_config", {
        "bastion": {"HostName": "127.0.0.1", "Port": bastion.port, "User": bastion.user, "IdentityFile": key},
        "i-*": {"HostName": "127.0.0.1", "Port": machine.port, "User": machine.user, "IdentityFile": key, **through},
    })
    target = resolve_target(["i-0abc"], user="ubuntu", key_file=None, ssh_config=str(config))
    before = logins(bastion)
    transport = SSHTransport(target, known_hosts=known_hosts, where="machine i-0abc", connect_timeout=30,
                             host_key_alias="i-0abc")
    try:
        assert transport.run("echo $BURST_WHO").out == "the machine\n"
    finally:
        transport.close()
    assert wait_for(lambda: logins(bastion) == before + 1), "the connection went through the bastion"
    bastion.stop()  # without the bastion, no way in
    with pytest.raises(SSHError):
        SSHTransport(target, known_hosts=known_hosts, where="machine i-0abc", connect_timeout=3, host_key_alias="i-0abc")


def test_proxy_jump_hops_are_looked_up_in_the_same_config(tmp_path):
    config = write_ssh_config(tmp_path / "ssh_config", {
        "outer": {"HostName": "198.51.100.1", "User": "ops", "Port": 2222},
        "inner": {"HostName": "10.0.0.5", "ProxyJump": "outer"},
        "i-*": {"HostName": "10.0.1.9", "ProxyJump": "admin@inner:2200"},
    })
    target = resolve_target(["i-1"], user="ubuntu", key_file="/k.pem", ssh_config=str(config))
    assert (target.hostname, target.port, target.user) == ("10.0.1.9", 22, "ubuntu")
    assert (target.jump.hostname, target.jump.port, target.jump.user) == ("10.0.0.5", 2200, "admin")
    assert (target.jump.jump.hostname, target.jump.jump.port, target.jump.jump.user) == ("198.51.100.1", 2222, "ops")
    assert target.jump.jump.jump is None and target.jump.key_files == ["/k.pem"]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
