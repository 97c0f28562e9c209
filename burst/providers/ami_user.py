"""Who logs in to a stock AMI: the SSH user follows the image (DescribeImages' name, owner, description).

Each distribution's cloud images make one default user for the key pair; logging
in as another is refused (publickey). Without ``--user`` burst takes the image's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Distribution:
    """A distribution's cloud images: how to recognise them and the user they make."""

    name: str  # a version the pattern captures is added: "Amazon Linux 2023"
    user: str
    patterns: tuple[str, ...]  # regexes of what the image's name, description or location says (lower case), in order
    owners: tuple[str, ...] = ()  # the accounts that publish its images: known when the name says nothing


# tried in this order (the first pattern found wins)
DISTRIBUTIONS: tuple[Distribution, ...] = (
    Distribution("Ubuntu", "ubuntu", (r"ubuntu",), ("099720109477",)),  # Canonical
    Distribution("Debian", "admin", (r"debian",), ("136693071363",)),
    Distribution("Amazon Linux", "ec2-user", (r"al(20\d\d)-ami|amazon linux (20\d\d)", r"amzn2?-ami|amazon linux"),
                 ("137112412989",)),
    Distribution("Red Hat Enterprise Linux", "ec2-user", (r"\brhel|red hat",), ("309956199498",)),
    Distribution("SUSE Linux Enterprise", "ec2-user", (r"suse|sles",), ("013907871322",)),
    Distribution("Rocky Linux", "rocky", (r"rocky",), ("792107900819",)),
    Distribution("AlmaLinux", "ec2-user", (r"almalinux",)),
    Distribution("CentOS", "centos", (r"centos",)),
    Distribution("Fedora", "fedora", (r"fedora",), ("125523088429",)),
    Distribution("FreeBSD", "ec2-user", (r"freebsd",)),
    Distribution("Bitnami", "bitnami", (r"bitnami",)),
)
FALLBACK_USER = "ec2-user"


@dataclass(frozen=True)
class LoginUser:
    user: str
    distribution: str  # "" when the image says nothing burst knows
    note: str = ""  # said to the person when the user is a guess


def login_user(image: dict) -> LoginUser:
    """The default SSH user of a DescribeImages entry."""
    text = " ".join(str(image.get(key) or "") for key in ("Name", "Description", "ImageLocation")).lower()
    for distribution in DISTRIBUTIONS:
        for pattern in distribution.patterns:
            found = re.search(pattern, text)
            if found:
                return LoginUser(distribution.user, " ".join([distribution.name, *filter(None, found.groups())]))
    owner = str(image.get("OwnerId", ""))
    for distribution in DISTRIBUTIONS:
        if owner in distribution.owners:
            return LoginUser(distribution.user, distribution.name)
    name = image.get("Name") or image.get("ImageId") or "this AMI"
    return LoginUser(FALLBACK_USER, "", f"the SSH user of {name} is not known to burst: trying {FALLBACK_USER} "
                                        f"(pass --user USER if the image logs in as another)")


def refused_verdict(instance_id: str, user: str, image_id: str, expected: LoginUser | None, given: bool) -> str:
    """What a refused login means and what to do, in one sentence."""
    head = f"{instance_id} refused user {user!r} (publickey)"
    if expected is not None and expected.user != user:
        return (f"{head}: this AMI ({expected.distribution or image_id}) logs in as {expected.user}: "
                f"pass --user {expected.user}")
    if given or expected is None or not expected.distribution:
        return (f"{head}: the AMI {image_id} may log in as another user (ubuntu, ec2-user, admin, rocky, centos, "
                f"fedora, ...): pass --user USER")
    return (f"{head}, the user of this AMI ({expected.distribution}): the key pair may not be the one the machine "
            f"was launched with, or the AMI was changed to log in as another user: pass --user USER")
