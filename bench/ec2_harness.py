"""Shared by the EC2 benches: moto in server mode (HTTP), an optional counting proxy, one sshd as every node.

Not a bench itself. `Moto` starts a ThreadedMotoServer in this process and points
this process's boto3 at it (fake credentials, metadata service off); `run_campaign`
runs `dispatcher.py AMI JOB FILE -c -d --wait` in a fresh HOME and BURST_HOME, with
one real OpenSSH sshd on 127.0.0.1 standing in for every instance through
`--ssh-config` (started once the dispatcher has written the job's key file, as
tests/test_ec2_campaign.py's `Nodes` does). The nodes' agents reach AWS at
`node_endpoint` (the proxy, so their requests count too).
Needs Debian's openssh-server (bash scripts/test.sh installs it).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import proctree  # noqa: E402

from tests.motoserver import REGION, find_ami, reset_moto  # noqa: E402
from tests.sshd import SSHServer, node_env, write_ssh_config  # noqa: E402

# tests/sshd.py writes "MaxStartups 100" and "MaxSessions 100" and takes no option for them:
# this subclass rewrites those lines (64 machines set up at once open 64+ connections).
MAX_STARTUPS = 200
MAX_SESSIONS = 200

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
STRIPPED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CA_BUNDLE")


class BigSSHServer(SSHServer):
    """tests.sshd.SSHServer with MaxStartups / MaxSessions raised."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        text = re.sub(r"(?m)^MaxStartups .*$", f"MaxStartups {MAX_STARTUPS}", text)
        text = re.sub(r"(?m)^MaxSessions .*$", f"MaxSessions {MAX_SESSIONS}", text)
        self.config_path.write_text(text)


class Moto:
    """One moto server for the whole bench; `reset()` between campaigns."""

    def __init__(self):
        import moto.settings
        from moto.server import ThreadedMotoServer

        moto.settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION = True
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        for name in STRIPPED:
            os.environ.pop(name, None)
        os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=self.url)
        from tests.pricelist import price_list_server  # moto has no Price List API: the tests' replay

        os.environ["AWS_ENDPOINT_URL_PRICING"] = price_list_server().url
        self.reset()
        self.ami = find_ami()

    def reset(self) -> None:
        reset_moto(self.url)

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Outcome:
    seconds: float
    returncode: int
    output: str
    machines: list[dict] = field(default_factory=list)  # per node folder: install start/exit times (epoch)
    started: float = 0.0
    cpu_dispatcher: float = 0.0  # CPU seconds of dispatcher.py (and the children it waited for)
    cpu_nodes: float = 0.0  # of sshd and everything that ran on the "nodes" (setup.sh, INSTALL.sh, agents)
    cpu_aws: float = 0.0  # of this process: moto (and the counting proxies) serving the requests
    cpu_others: float = 0.0  # of other work on this machine meanwhile (see proctree.Others)
    measured: float = 0.0  # seconds over which cpu_others was measured


def _node_times(folder: Path) -> list[dict]:
    found = []
    for machine in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        times = {}
        for name in ("install.started", "install.exit", "worker.started", "worker.exit"):
            path = machine / name
            times[name] = path.stat().st_mtime if path.exists() else None
        found.append(times)
    return found


def run_campaign(moto: Moto, rows: list[tuple[str, str]], *, job: str, install: str = "#!/bin/bash\n",
                 extra: list[str] = (), dispatcher_endpoint: str | None = None, node_endpoint: str | None = None,
                 timeout: float = 1800) -> Outcome:
    """`dispatcher.py AMI JOB FILE -c -d --wait` on moto + one sshd; the timed part is the command alone."""
    dispatcher_endpoint = dispatcher_endpoint or moto.url
    node_endpoint = node_endpoint or dispatcher_endpoint
    temp = Path(tempfile.mkdtemp(prefix=f"burst-bench-{job}-"))
    sshd = nodes = None
    try:
        home = temp / "home"
        (home / ".ssh").mkdir(parents=True)
        jobfile = temp / "jobs.csv"
        with open(jobfile, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["instance_type", "command"])
            writer.writerows(rows)
        (temp / "jobs").mkdir()  # the code folder: empty
        install_file = temp / "INSTALL.sh"
        install_file.write_text(install)
        sshd = BigSSHServer(temp / "sshd", env=node_env(
            AWS_ENDPOINT_URL=node_endpoint, AWS_ACCESS_KEY_ID="node-testing", AWS_SECRET_ACCESS_KEY="node-testing",
            AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true"))
        config = write_ssh_config(temp / "ssh_config", {"*": {"HostName": "127.0.0.1", "Port": sshd.port, "User": sshd.user}})
        pem = home / ".ssh" / f"{job}.pem"
        nodes = sshd.home / f".burst-bench-nodes-{uuid.uuid4().hex[:12]}"  # --node-root: inside the login home
        failure: list[BaseException] = []

        def start_when_key_exists():
            try:
                deadline = time.monotonic() + 300
                while not (pem.exists() and pem.stat().st_size > 0):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{pem} never appeared")
                    time.sleep(0.05)
                public = subprocess.run(["ssh-keygen", "-y", "-f", str(pem)], capture_output=True, text=True, check=True)
                sshd.authorize(public.stdout)
                sshd.start()
            except BaseException as error:  # reported below
                failure.append(error)

        starter = threading.Thread(target=start_when_key_exists, daemon=True)
        env = dict(os.environ, HOME=str(home), BURST_HOME=str(temp / "burst"), AWS_ENDPOINT_URL=dispatcher_endpoint,
                   COLUMNS="200")
        args = [sys.executable, str(REPO / "dispatcher.py"), moto.ami, job, str(jobfile), "-c", "-d", "--wait",
                "--install", str(install_file), "--ssh-config", str(config), "--ssh-cidr", "127.0.0.1/32",
                "--node-root", nodes.name, "--yes", *extra]
        proctree.become_subreaper()  # detached node processes are re-parented here: their CPU is counted
        children, own = proctree.children_cpu(), proctree.self_cpu()
        others = proctree.Others().start()
        starter.start()
        started = time.time()
        result = proctree.run(args, env, str(temp / "dispatcher.log"), timeout=timeout)
        starter.join(timeout=5)
        output = result.output
        if failure:
            output += f"\nsshd could not be started: {failure[0]}\n{sshd.log()}"
        outcome = Outcome(result.wall, result.returncode, output, _node_times(nodes / job), started,
                          cpu_dispatcher=result.cpu)
        _wait_for_agents(nodes)
        sshd.stop()
        proctree.reap(30)
        outcome.cpu_aws = proctree.self_cpu() - own
        outcome.cpu_nodes = proctree.children_cpu() - children - result.cpu
        outcome.cpu_others, outcome.measured = others.stop(), others.wall
        return outcome
    finally:
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(temp, ignore_errors=True)
        if nodes is not None:
            shutil.rmtree(nodes, ignore_errors=True)


def _wait_for_agents(nodes: Path, seconds: float = 30.0) -> None:
    """Workers may still be exiting after --wait returned; let them go before their folder is removed."""
    deadline = time.monotonic() + seconds
    while nodes.is_dir() and time.monotonic() < deadline:
        if all((m / "worker.exit").exists() or not (m / "worker.started").exists()
               for job in nodes.iterdir() for m in job.iterdir() if m.is_dir()):
            return
        time.sleep(0.2)


def check(outcome: Outcome, what: str) -> None:
    if outcome.returncode != 0:
        raise SystemExit(f"{what}: dispatcher exited with status {outcome.returncode}:\n{outcome.output[-4000:]}")
