"""The two scripts the dispatcher writes into a tag's folder on its node.

``setup.sh`` runs bootstrap (EC2) and the user's INSTALL.sh, leaving ``READY``
on success and ``install.exit`` always, so the dispatcher can tell a failed
install from a slow one. ``run.sh`` runs the row's command in the code folder
and always hands over to the agent afterwards. Every value is shell-quoted; the
user's command is the only free shell text, and it runs under ``bash -c``.
"""

from __future__ import annotations

import shlex

from burst.providers.base import NodeConfig


def _exports(config: NodeConfig, node_dir_var: str = "$NODE_DIR") -> str:
    values = {
        "TAG": config.tag,
        "JOB": config.job,
        "INSTANCE_ID": config.instance_id,
        "INSTANCE_TYPE": config.instance_type,
        "BURST_PROVIDER": config.provider,
    }
    lines = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    lines.append(f'export BURST_NODE_DIR="{node_dir_var}"')
    return "\n".join(lines)


def setup_script(config: NodeConfig, bootstrap: bool) -> str:
    bootstrap_step = (
        f"BURST_NEEDS_BOTO3={'1' if config.bucket_url.startswith('s3://') else '0'} bash agent/burst/bootstrap.sh && "
        if bootstrap else ""
    )
    return f"""#!/bin/bash
# Written by burst: set up tag {config.tag} of job {config.job}.
cd "$(dirname "$0")" || exit 1
NODE_DIR="$PWD"
{_exports(config)}
rm -f READY install.exit
mkdir -p logs
touch install.started
( {bootstrap_step}cd code && bash ../INSTALL.sh ) > logs/install.log 2>&1 < /dev/null
code=$?
# READY before install.exit: a probe between the two must not see a finished, non-ready install
[ "$code" -eq 0 ] && touch READY
echo "$code" > install.exit
exit "$code"
"""


def run_script(config: NodeConfig, python: str) -> str:
    return f"""#!/bin/bash
# Written by burst: run tag {config.tag} of job {config.job}, then always save and end.
cd "$(dirname "$0")" || exit 1
NODE_DIR="$PWD"
PYTHON={shlex.quote(python)}
{_exports(config)}
mkdir -p logs
"$PYTHON" agent/save_results.py start >> logs/agent.log 2>&1
cd code
started_ns=$(date +%s%N)
bash -c {shlex.quote(config.command)} > "$NODE_DIR/logs/stdout.log" 2> "$NODE_DIR/logs/stderr.log" < /dev/null
code=$?
ended_ns=$(date +%s%N)
cd "$NODE_DIR"
"$PYTHON" agent/save_results.py finish --exit-code "$code" --started-ns "$started_ns" --ended-ns "$ended_ns" >> logs/agent.log 2>&1
"""


# One round trip tells the dispatcher where a tag's node stands.
def probe_command(node_dir: str) -> str:
    folder = shlex.quote(node_dir)
    return (
        f"cd {folder} 2>/dev/null || {{ echo NEW; exit 0; }}; "
        "if [ -e run.started ]; then echo DISPATCHED; "
        "elif [ -e READY ]; then echo READY; "
        "elif [ -e install.exit ]; then echo \"FAILED $(cat install.exit)\"; tail -n 20 logs/install.log; "
        "elif [ -e install.started ]; then echo INSTALLING; "
        "else echo NEW; fi"
    )
