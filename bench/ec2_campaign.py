"""What burst's EC2 path costs: N rows over 2 instance types against moto (HTTP) and a real sshd.

    .venv/bin/python bench/ec2_campaign.py [N ...]     (default: 6 24)

Prints wall time of `dispatcher.py AMI JOB JOBFILE -c -d --wait` and the AWS calls
moto saw by operation (from moto's request log), so a per-instance-per-round call
pattern (the O(N^2) of aws-runner) shows up as a count growing faster than N.
Needs Debian's openssh-server (bash scripts/test.sh installs it).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.motoserver import reset_moto  # noqa: E402
from tests.sshd import SSHServer, node_env, write_ssh_config  # noqa: E402


class CallCounter(logging.Handler):
    """Counts moto's werkzeug request lines (POST / with Action=... for EC2 is not in the line, so count paths)."""

    def __init__(self):
        super().__init__()
        self.requests = 0

    def emit(self, record):
        self.requests += 1


def run(rows: int) -> tuple[float, int]:
    from moto.server import ThreadedMotoServer
    import moto.settings

    moto.settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION = True
    counter = CallCounter()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    werkzeug.handlers = [counter]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=True)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    reset_moto(endpoint)  # moto's state is per process, not per server
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        home = temp / "home"
        home.mkdir()
        env = dict(os.environ, HOME=str(home), BURST_HOME=str(temp / "burst"), AWS_ENDPOINT_URL=endpoint,
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")
        sshd = SSHServer(temp / "sshd", env=node_env(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                                                      AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true"))
        job = "benchec2"
        setup = subprocess.run([sys.executable, str(REPO / "cloud_setup.py"), job, "--ssh-cidr", "127.0.0.1/32"],
                               env=env, capture_output=True, text=True)
        if setup.returncode != 0:
            raise SystemExit(f"cloud_setup.py failed: {setup.stderr}")
        pub = subprocess.run(["ssh-keygen", "-y", "-f", str(home / ".ssh" / f"{job}.pem")], capture_output=True, text=True, check=True)
        sshd.authorize(pub.stdout)
        sshd.start()
        config = write_ssh_config(temp / "ssh_config", {"*": {"HostName": "127.0.0.1", "Port": sshd.port, "User": sshd.user}})
        jobfile = temp / "jobs.csv"
        jobfile.write_text("instance_type,command\n" + "".join(f"{'t3.micro' if i % 2 else 'c5.large'},true\n" for i in range(rows)))
        install = temp / "INSTALL.sh"
        install.write_text("#!/bin/bash\n")
        ami = subprocess.run([sys.executable, "-c", "from tests.motoserver import find_ami; print(find_ami())"],
                             env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        counter.requests = 0
        start = time.perf_counter()
        try:
            subprocess.run([sys.executable, str(REPO / "dispatcher.py"), ami, job, str(jobfile), "-c", "-d", "--wait",
                            "--install", str(install), "--ssh-config", str(config), "--ssh-cidr", "127.0.0.1/32",
                            "--node-root", str(temp / "nodes"), "--results", "none"], env=env, check=True, capture_output=True)
            return time.perf_counter() - start, counter.requests
        finally:
            sshd.stop()
            server.stop()


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [6, 24]
    print(f"{'rows':>5} {'seconds':>8} {'per row':>8} {'HTTP requests to AWS':>21}")
    for rows in sizes:
        seconds, requests = run(rows)
        print(f"{rows:>5} {seconds:>8.2f} {seconds / rows:>8.3f} {requests:>21}")


if __name__ == "__main__":
    main()
