"""What the dispatcher puts on a machine and the shell lines it runs there.

One bundle per campaign run (``bundle.tar.gz``: INSTALL.sh, the agent, the code
folder, ``setup.sh`` and ``worker.sh``), copied once per machine; one remote
command unpacks it, writes ``node.json`` and starts ``setup.sh`` detached;
``setup.sh`` runs the bootstrap (EC2) and INSTALL.sh and, when asked to, starts
the worker as soon as the machine is READY. Every value is shell-quoted.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from pathlib import Path

import burst
from burst import protocol
from burst.node.config import NodeConfig
from burst.transport.base import SKIPPED_NAMES

PACKAGE_DIR = Path(burst.__file__).resolve().parent
# What of burst a machine needs: the node, the storage seam and the shared bottom layer (tests/test_layout.py
# keeps the node from importing anything else), not the dispatcher's cli, control, results, providers, transport.
NODE_PARTS = ("node", "storage")
SHARED_MODULES = ("__init__.py", "protocol.py", "records.py", "errors.py", "retry.py", "atomic.py", "concurrency.py")
RUNTIME_DIR = "agent/runtime"  # the node's own boto3 and its dependencies (burst.control.runtime)
# The machine's entry point: written here rather than copied from the checkout, so
# that an installed burst (no checkout around it) makes the same bundle.
AGENT_ENTRY = f"""#!/usr/bin/env python3
# Written by burst: the machine's worker (``save_results.py work``), with the burst package beside it
# and, on a stock machine, its own runtime (boto3 and what it needs) before the machine's site-packages.
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
if (here / "runtime").is_dir():
    sys.path.insert(0, str(here / "runtime"))
sys.stderr.write("worker: Python %s (%s)%s\\n" % (sys.version.split()[0], sys.executable,
                 ", with its own runtime" if (here / "runtime").is_dir() else ""))
try:
    from burst.node.entry import main
except BaseException:  # the worker's code does not run here: say so, and leave {protocol.WORKER_EXIT} for the probe
    import traceback

    traceback.print_exc()
    sys.stderr.write("worker: cannot work: its code does not import on this Python\\n")
    (here.parent / "{protocol.WORKER_EXIT}").write_text("3\\n")
    sys.exit(3)
sys.exit(main())
"""
NO_INSTALL = "#!/bin/bash\n# Written by burst: no INSTALL.sh was given (--install), so there is nothing to set up.\n"


def write_file_command(name: str, value: str) -> str:
    """Shell that writes a node file whole or not at all, as ``burst.atomic`` does in Python.

    ``value`` is a shell word (quoted, or ``"$var"``): printed into ``.<name>.part``,
    synced, renamed onto ``name``. A probe or a worker never reads half a ``node.json``
    (the node may have no Python yet when it is written, hence shell).
    """
    temp = shlex.quote(f".{name}.part")
    return f"printf %s {value} > {temp} && {{ sync {temp} 2>/dev/null; true; }} && mv -f {temp} {shlex.quote(name)}"


def setup_script(bootstrap: bool) -> str:
    bootstrap_step = f"bash agent/burst/node/bootstrap.sh {protocol.NODE_PYTHON} && " if bootstrap else ""
    return f"""#!/bin/bash
# Written by burst: set this machine up, then (with -d) start its worker.
cd "$(dirname "$0")" || exit 1
NODE_DIR="$PWD"
export JOB INSTANCE_ID INSTANCE_TYPE BURST_PROVIDER BURST_NODE_DIR="$NODE_DIR"
. ./node.env
rm -f {protocol.READY_FILE} {protocol.INSTALL_EXIT}
mkdir -p logs
touch {protocol.INSTALL_STARTED}
( {bootstrap_step}cd code && bash ../INSTALL.sh ) > {protocol.INSTALL_LOG} 2>&1 < /dev/null
code=$?
# READY before install.exit: a probe between the two must not see a finished, non-ready install
[ "$code" -eq 0 ] && touch {protocol.READY_FILE}
{write_file_command(protocol.INSTALL_EXIT, '"$code"')}
[ "$code" -eq 0 ] && [ -e start-worker ] && exec bash {protocol.WORKER_SCRIPT}
exit "$code"
"""


def worker_script(python: str) -> str:
    """The worker's start: with the interpreter the bootstrap chose (a python3 >= 3.9), else ``python``."""
    return f"""#!/bin/bash
# Written by burst: the machine's one worker (it refuses to start twice).
cd "$(dirname "$0")" || exit 1
. ./node.env
export BURST_NODE_DIR="$PWD"
python=$(cat {protocol.NODE_PYTHON} 2>/dev/null) || python=''
exec "${{python:-{python}}}" agent/save_results.py work --node-dir "$PWD" >> logs/worker.log 2>&1 < /dev/null
"""


def node_env(config: NodeConfig, env: dict[str, str] | None = None) -> str:
    """``node.env``: the burst variables, then the user's ``--env`` ones, all exported, every value quoted.

    setup.sh and worker.sh source it, so INSTALL.sh, the worker and every command
    see the same variables (the user's are not in node.json).
    """
    values = {"JOB": config.job, "INSTANCE_ID": config.instance_id, "INSTANCE_TYPE": config.instance_type,
              "BURST_PROVIDER": config.provider}
    values = {**(env or {}), **values}  # parse_env refuses these names; the burst variables win regardless
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def _add_text(archive: tarfile.TarFile, name: str, text: str, mode: int = 0o755) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if any(part in SKIPPED_NAMES for part in Path(info.name).parts) else info


def _add_agent(archive: tarfile.TarFile) -> None:
    for name in SHARED_MODULES:
        archive.add(PACKAGE_DIR / name, f"agent/burst/{name}")
    for part in NODE_PARTS:
        archive.add(PACKAGE_DIR / part, f"agent/burst/{part}", filter=_skip_caches)


def build_bundle(install_file: Path | None, code_dir: Path | None, python: str, bootstrap: bool,
                 runtime: Path | None = None) -> bytes:
    """Everything a machine needs, as one gzipped tar (made once per campaign run).

    ``runtime``: a folder of the node's own Python packages (``burst.control.runtime``),
    shipped as ``agent/runtime`` and put first on the worker's ``sys.path``.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        if install_file is not None:
            archive.add(install_file, "INSTALL.sh")
        else:
            _add_text(archive, "INSTALL.sh", NO_INSTALL)
        _add_text(archive, "agent/save_results.py", AGENT_ENTRY)
        _add_agent(archive)
        if runtime is not None:
            archive.add(runtime, RUNTIME_DIR, filter=_skip_caches)
        if code_dir is not None:
            archive.add(code_dir, "code", filter=_skip_caches)
        else:
            info = tarfile.TarInfo("code")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        _add_text(archive, protocol.SETUP_SCRIPT, setup_script(bootstrap))
        _add_text(archive, protocol.WORKER_SCRIPT, worker_script(python))
    return buffer.getvalue()


def start_setup_command(node_dir: str, config: NodeConfig, start_worker: bool, env: dict[str, str] | None = None) -> str:
    """One remote command: unpack the bundle, write node.json, start setup.sh detached.

    With ``start_worker`` setup.sh starts the worker itself once INSTALL.sh succeeds:
    no dispatcher round trip, and no window in which a killed dispatcher loses it.
    """
    folder = shlex.quote(node_dir)
    marker = "touch start-worker; " if start_worker else ""
    return (
        f"cd {folder} && tar -xzf {protocol.BUNDLE} --no-same-permissions && rm -f {protocol.BUNDLE} && "
        f"{write_file_command(protocol.NODE_CONFIG, shlex.quote(config.to_json()))} && "
        f"(umask 077 && {write_file_command('node.env', shlex.quote(node_env(config, env)))}) && {marker}"
        f"{{ nohup setsid bash {protocol.SETUP_SCRIPT} > logs/setup.out 2>&1 < /dev/null & }}"
    )


def start_worker_command(node_dir: str) -> str:
    """Start the worker on a READY machine, unless setup.sh was told to start it (it then has).

    Idempotent either way: the worker itself refuses a second start.
    """
    return (
        f"cd {shlex.quote(node_dir)} && {{ [ -e start-worker ] || {{ touch start-worker; "
        f"nohup setsid bash {protocol.WORKER_SCRIPT} > /dev/null 2>&1 < /dev/null & }}; }}"
    )


def probe_command(node_dir: str) -> str:
    """One round trip tells where a machine stands: a probe word, then details."""
    folder = shlex.quote(node_dir)
    p = protocol
    return (
        f"cd {folder} 2>/dev/null || {{ echo {p.P_NEW}; exit 0; }}; "
        f"if [ -e {p.WORKER_EXIT} ]; then echo {p.P_FINISHED}; "
        f"elif [ -e {p.WORKER_STARTED} ]; then "
        f"if flock -n {p.WORKER_LOCK} true 2>/dev/null; then echo {p.P_DEAD}; else echo {p.P_WORKING}; fi; "
        f"elif [ -e {p.READY_FILE} ]; then echo {p.P_READY}; "
        f"elif [ -e {p.INSTALL_EXIT} ]; then echo \"{p.P_FAILED} $(cat {p.INSTALL_EXIT})\"; tail -n 20 {p.INSTALL_LOG}; "
        f"elif [ -e {p.INSTALL_STARTED} ] || [ -e {p.NODE_CONFIG} ]; then echo {p.P_INSTALLING}; "
        f"else echo {p.P_NEW}; fi"
    )
