"""RunInstances, as EC2 really answers it: partial capacity, other zones, quotas, a new instance profile.

* Every call asks for ``MinCount=1`` and ``MaxCount`` = the machines still missing: EC2
  starts as many as it has (all of them in one call when the zone has them). A call that
  started fewer is followed at once, in the same round, by one for the rest (MinCount 1
  again), in the same subnet until it refuses, then in the next. Each call that is not
  refused starts at least one machine, so a subnet takes at most as many calls as
  machines are missing, plus the refusal.
* ``InsufficientInstanceCapacity`` or ``Unsupported`` (the type is not offered there)
  in one Availability Zone: the rest is asked of the next subnet (zone) of the job's.
  When every zone has refused after some machines started, those are returned and the
  pool launches the rest next round (said, never an error). When every zone refused
  all of them, it waits (15, 30, then 60 s, said every 30 s) and tries them all again,
  ``CAPACITY_TRIES`` times, then gives up saying what runs. A spot request refused in
  every zone goes back to ``ec2_spot`` (on-demand, or wait) with the spot machines that
  did start.
* A quota error ends nothing: machines running rows go on, and the call that failed
  started none (RunInstances starts at least MinCount or nothing). Before anything
  started it raises ``UserError`` saying which quota and what runs; after some started
  in this round, those are kept and the error is said: the next round meets it again.
* A new instance profile is not usable at once (IAM is eventually consistent):
  its refusal is waited out for up to ``PROFILE_WAIT`` seconds, said every 30 s.
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import ClientError

from burst.errors import BurstError, UserError, command_name, live_sentence
from burst.providers import ec2_checks, ec2_spot
from burst.providers.aws_names import node_role_name
from burst.providers.ec2_checks import _code, _message
from burst.providers.ec2_network import Subnet, placement
from burst.providers.ec2_spot import SpotRefused
from burst.retry import backoff, wait_saying

QUOTA_CODES = frozenset({"VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded"})
CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "Unsupported"})  # of one zone: try the next
CAPACITY_TRIES = 8  # rounds over every zone while EC2 has no capacity: waits of 15, 30, then 60 s (about 6 minutes)
PROFILE_WAIT = 180.0  # seconds a new instance profile may take to reach EC2 (AWS: "may take a few minutes")


def is_profile_not_ready(code: str, message: str) -> bool:
    text = message.lower()
    return code == "InvalidParameterValue" and ("iam instance profile" in text or "iaminstanceprofile" in text)


class _ZoneRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(code)
        self.code = code
        self.message = message


def run_instances(provider: Any, params: dict[str, Any], count: int,
                  spot_refusals: bool = False) -> list[dict[str, Any]]:
    """Up to ``count`` machines of ``params`` (at least one), from the subnets (zones) in their order.

    ``provider`` is the ``EC2Provider`` (its client, subnets, resources, ``sleep`` and ``report``).
    """
    what = f"{count} × {params['InstanceType']}"
    subnets: list[Subnet | None] = list(provider.subnets()) or [None]
    waits = backoff(first=15.0, factor=2.0, cap=60.0, jitter=0)  # the one policy (burst.retry)
    rounds = 0
    while True:
        started: list[dict[str, Any]] = []
        refusals: list[str] = []
        last = _ZoneRefused("InsufficientInstanceCapacity", "")
        try:
            for subnet in subnets:
                refused = _fill(provider, params, count, started, subnet, spot_refusals)
                if refused is None:
                    return started
                refusals.append(refused.code)
                last = refused
        except SpotRefused as refused:
            refused.instances = started  # the spot machines that did start: kept
            raise
        except (UserError, BurstError) as error:  # a quota, or an error no retry fixed: what started is kept
            if not started:
                raise
            provider.report(f"EC2 started {len(started)} of {what}; the rest were refused: {error}")
            return started
        if spot_refusals:
            refused = SpotRefused(last.code)
            refused.instances = started
            raise refused
        if started:
            provider.report(f"EC2 started {len(started)} of {what} ({_summary(refusals)}): the rest next round")
            return started
        rounds += 1
        if rounds < CAPACITY_TRIES:
            wait_saying(next(waits), sleep=provider.sleep, every=provider.report_every, say=lambda left: provider.report(
                f"waiting for capacity for {what} (try {rounds + 1} of {CAPACITY_TRIES}) in {provider.region}: "
                f"{_summary(refusals)}; next try in {left:.0f} s"))
            continue
        raise BurstError(
            f"AWS has no capacity for {what} in {provider.region} now ({last.message.rstrip('.')}; "
            f"{_summary(refusals)}; {CAPACITY_TRIES} tries): none of these {count} was started. "
            f"{live_sentence(provider.job, provider.live_ids())} Run the same command later to start machines for "
            f"the rows still waiting, add subnets in other zones (--subnet), or use another instance type or region."
        ) from None


def _fill(provider: Any, params: dict[str, Any], count: int, started: list[dict[str, Any]], subnet: Subnet | None,
          spot_refusals: bool) -> _ZoneRefused | None:
    """Ask one subnet for what ``started`` still lacks of ``count`` (MinCount 1) until it is all there or refused.

    Appends each call's machines to ``started`` (so a caller keeps them whatever is raised
    after); None once ``count`` run, else the zone's refusal.
    """
    while len(started) < count:  # a call not refused starts at least one machine: at most ``count`` calls
        try:
            instances = _run_in(provider, params, count - len(started), subnet, spot_refusals)
        except _ZoneRefused as refused:
            return refused
        if not instances:  # not what EC2 answers to MinCount 1; taken as the zone's refusal, never looped on
            return _ZoneRefused("InsufficientInstanceCapacity", "EC2 started none")
        started.extend(instances)
    return None


def _summary(codes: list[str]) -> str:
    """``InsufficientInstanceCapacity`` (one zone), or ``InsufficientInstanceCapacity in 6 zones``."""
    text = ", ".join(dict.fromkeys(codes))
    return text if len(codes) == 1 else f"{text} in {len(codes)} zones"


def _run_in(provider: Any, params: dict[str, Any], count: int, subnet: Subnet | None,
            spot_refusals: bool) -> list[dict[str, Any]]:
    """RunInstances of 1 to ``count`` machines in one subnet; a zone without even one raises ``_ZoneRefused``."""
    what = f"{count} × {params['InstanceType']}"
    resources = provider._prepared()
    where = placement(subnet, resources.security_group_id, provider.options.public_ip)
    profile_waits = backoff(first=2.0, factor=2.0, cap=15.0, jitter=0)
    waited = said = 0.0
    while True:
        try:
            # A fresh ClientToken per attempt; botocore's own retries reuse it (no double launch).
            response = provider.ec2.run_instances(**params, **where, MinCount=1, MaxCount=count,
                                                  ClientToken=uuid.uuid4().hex)
            return list(response["Instances"])
        except ClientError as error:
            code, message = _code(error), _message(error)
            if code in CAPACITY_CODES:
                raise _ZoneRefused(code, message) from None
            if spot_refusals and code in ec2_spot.SPOT_REFUSALS:
                raise SpotRefused(code) from None
            if code in QUOTA_CODES:
                raise UserError(
                    f"AWS refused to start {what} in {provider.region}: {code}: {message} Your account's EC2 "
                    f"quota is too small for this campaign: request an increase in the Service Quotas console "
                    f"(Amazon EC2, e.g. 'Running On-Demand Standard instances', counted in vCPUs) or run fewer "
                    f"rows or smaller types at a time. {live_sentence(provider.job, provider.live_ids())} They go "
                    f"on with their rows. Once the quota is raised, run the same command again: the rows not "
                    f"done wait for machines."
                ) from None
            if is_profile_not_ready(code, message) and waited < PROFILE_WAIT:
                delay = next(profile_waits)
                provider.sleep(delay)  # IAM is eventually consistent
                waited += delay
                if waited - said >= provider.report_every:
                    said = waited
                    provider.report(f"waiting for the new instance profile {resources.instance_profile_name} to "
                                    f"reach EC2 ({waited:.0f} s of up to {PROFILE_WAIT:.0f} s)")
                continue
            if is_profile_not_ready(code, message):
                raise BurstError(
                    f"EC2 still refuses the instance profile {resources.instance_profile_name} after "
                    f"{waited:.0f} s: {message} Run the same command again in a few minutes."
                ) from None
            if code == "OptInRequired":
                raise ec2_checks.subscription_error(provider.image, provider._marketplace_codes, message) from None
            if code == "UnauthorizedOperation":
                raise UserError(
                    f"Your AWS identity may not start {what}: {message} burst needs ec2:RunInstances, "
                    f"ec2:CreateTags and iam:PassRole on the role {node_role_name(provider.job)} "
                    f"(`{command_name()} permissions` prints all it needs); ask your administrator or use another --profile."
                ) from None
            raise BurstError(f"RunInstances of {what} in {provider.region} failed: {code}: {message.rstrip('.')}. "
                             f"{live_sentence(provider.job, provider.live_ids())} Run the same command again to resume.") from None

