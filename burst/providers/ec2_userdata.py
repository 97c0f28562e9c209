"""The cloud-init script of every EC2 machine: the max-lifetime watchdog."""

from __future__ import annotations

import math

from burst.errors import UserError


def watchdog_minutes(max_hours: float) -> int:
    if not max_hours or max_hours <= 0:
        raise UserError(f"--max-hours {max_hours} must be more than 0.")
    return max(1, math.ceil(max_hours * 60))


def user_data(job: str, max_hours: float) -> str:
    """The cloud-init script of every machine: the max-lifetime watchdog.

    The only OS shutdown in burst, and it runs on EC2 instances only: they are
    launched with InstanceInitiatedShutdownBehavior=terminate, so shutting the
    OS down terminates the instance.
    """
    minutes = watchdog_minutes(max_hours)
    return (
        "#!/bin/bash\n"
        f"# burst job {job}: a machine never outlives its campaign by accident.\n"
        "# InstanceInitiatedShutdownBehavior=terminate: this shutdown terminates the instance.\n"
        f"shutdown -h +{minutes} 'burst: max lifetime of {max_hours:g} hours reached' || true\n"
    )
