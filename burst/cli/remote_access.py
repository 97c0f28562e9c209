"""Getting at a row's machine: ``ssh JOB TAG`` (a shell there) and ``logs JOB TAG -f`` (its output as it grows).

Both find the row's machine from the bucket (the claim of a running row, else
its last status) and the provider's live machines, so they work from any shell.
``-f`` reads the growing log through the Transport seam — over SSH on EC2, from
the sandbox's files locally — from where it left off, and once the row ends,
the rest from the copy its worker saved in the bucket.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from typing import TextIO

from burst import protocol
from burst.cli.console import command_name
from burst.control.campaign import Campaign
from burst.errors import UserError
from burst.node.status_store import load_status
from burst.records import InstanceInfo
from burst.storage import KeyNotFound

STREAMS = ("stdout", "stderr", "install")
POLL_SECONDS = 1.0


def _row_machine(campaign: Campaign, tag: str) -> tuple[InstanceInfo, int, bool]:
    """The row's live machine, its attempt, and whether that attempt is running now."""
    campaign.record.job_of(tag)  # names the known tags when this one is wrong
    world = campaign.fleet.observe()
    row = campaign.rows(world)[tag]
    held = world.bucket.claims.get(tag)
    running = row.state == protocol.RUNNING and held is not None
    machine = held.claim.machine if running else row.instance_id
    attempt = held.claim.attempt if running else row.attempt
    live = [m for m in world.live if m.id == machine]
    if not live:
        where = f"its machine {machine} has ended" if machine else "it has no machine yet"
        raise UserError(f"{tag} is {row.state} and {where}: see its saved logs with "
                        f"`{command_name()} logs {campaign.record.job} {tag}`.")
    return live[0], attempt, running


def shell(campaign: Campaign, tag: str, command: str | None, print_only: bool) -> int:
    """Exec a shell (or ``command``) on the tag's machine, in its running row's code folder or the machine's folder."""
    instance, attempt, running = _row_machine(campaign, tag)
    node_dir = campaign.provider.node_dir(instance)
    workdir = f"{node_dir}/runs/{tag}.{attempt}/code" if running else node_dir
    how = campaign.provider.shell_command(instance, workdir, command)
    if print_only:
        changed = {k: v for k, v in (how.env or {}).items() if os.environ.get(k) != v}
        prefix = f"cd {shlex.quote(how.cwd)} && " if how.cwd else ""
        prefix += "".join(f"{k}={shlex.quote(v)} " for k, v in sorted(changed.items()))
        print(prefix + shlex.join(how.argv))
        return 0
    sys.stdout.flush()
    if how.cwd:
        os.chdir(how.cwd)
    os.execvpe(how.argv[0], how.argv, how.env if how.env is not None else dict(os.environ))
    return 0  # not reached


def follow(campaign: Campaign, tag: str, stream: str, out: TextIO = sys.stdout) -> int:
    """Print the row's ``stream`` as it is written, until the row (or, for ``install``, INSTALL.sh) ends.

    A row that is not running has nothing to follow: its saved log is printed.
    """
    world = campaign.fleet.observe()
    if campaign.rows(world)[tag].state != protocol.RUNNING and stream != "install":
        row = campaign.rows(world)[tag]
        if not row.attempt:
            out.write(f"{tag} has not started yet ({row.state})\n")
            return 0
        try:
            out.write(campaign.storage.read_text(f"{protocol.attempt_logs_prefix(tag, row.attempt)}{stream}.log"))
        except KeyNotFound:
            out.write(f"(no {stream}.log of {tag} attempt {row.attempt})\n")
        return 0
    instance, attempt, running = _row_machine(campaign, tag)
    node_dir = campaign.provider.node_dir(instance)
    if stream == "install":
        remote = f"{node_dir}/{protocol.INSTALL_LOG}"
        saved = protocol.saved_machine_log(campaign.storage.list_keys(protocol.MACHINE_LOGS_PREFIX), instance.id, "install.log")
    else:
        remote = f"{node_dir}/runs/{tag}.{attempt}/logs/{stream}.log"
        saved = f"{protocol.attempt_logs_prefix(tag, attempt)}{stream}.log"
    transport = campaign.provider.transport(instance)
    offset = 0
    try:
        while True:
            ended = _ended(campaign, tag, attempt, stream, transport, node_dir) or not running
            chunk = transport.run(f"tail -c +{offset + 1} {shlex.quote(remote)} 2>/dev/null", check=False).out
            if chunk:
                out.write(chunk)
                out.flush()
                offset += len(chunk.encode("utf-8"))
            if ended:
                break
            time.sleep(POLL_SECONDS)
    finally:
        transport.close()
    try:  # what was written after the last read: the worker saved the whole log
        rest = campaign.storage.read_text(saved).encode("utf-8")[offset:].decode("utf-8", errors="replace")
    except KeyNotFound:
        rest = ""
    out.write(rest)
    out.flush()
    return 0


def _ended(campaign: Campaign, tag: str, attempt: int, stream: str, transport, node_dir: str) -> bool:
    if stream == "install":
        return transport.run(f"test -e {shlex.quote(node_dir + '/' + protocol.INSTALL_EXIT)}", check=False).ok
    status = load_status(campaign.storage, tag)
    if status is not None and status.attempt >= attempt and status.terminal:
        return True
    try:
        claim = campaign.storage.read_text(protocol.claim_key(tag))
    except KeyNotFound:
        return False
    data = json.loads(claim)
    return data.get("attempt") != attempt or data.get("state") != protocol.HELD
