"""Who logs in to a stock AMI: the SSH user follows the image (DescribeImages' name, owner, description).

Each distribution's cloud images make one default user for the key pair; logging
in as another is refused (publickey). Without ``--user`` burst takes the image's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (what the image's name or description says, as a regex; the user; the distribution, with the regex's group)
KNOWN_USERS: list[tuple[str, str, str]] = [
    (r"ubuntu", "ubuntu", "Ubuntu"),
    (r"debian", "admin", "Debian"),
    (r"al(20\d\d)-ami|amazon linux (20\d\d)", "ec2-user", "Amazon Linux {0}"),
    (r"amzn2?-ami|amazon linux", "ec2-user", "Amazon Linux"),
    (r"\brhel|red hat", "ec2-user", "Red Hat Enterprise Linux"),
    (r"suse|sles", "ec2-user", "SUSE Linux Enterprise"),
    (r"rocky", "rocky", "Rocky Linux"),
    (r"almalinux", "ec2-user", "AlmaLinux"),
    (r"centos", "centos", "CentOS"),
    (r"fedora", "fedora", "Fedora"),
    (r"freebsd", "ec2-user", "FreeBSD"),
    (r"bitnami", "bitnami", "Bitnami"),
]
# the image owners of the distributions (when the name says nothing)
OWNERS = {
    "099720109477": ("ubuntu", "Ubuntu"),  # Canonical
    "136693071363": ("admin", "Debian"),
    "137112412989": ("ec2-user", "Amazon Linux"),
    "309956199498": ("ec2-user", "Red Hat Enterprise Linux"),
    "013907871322": ("ec2-user", "SUSE Linux Enterprise"),
    "792107900819": ("rocky", "Rocky Linux"),
    "125523088429": ("fedora", "Fedora"),
}
FALLBACK_USER = "ec2-user"


@dataclass(frozen=True)
class LoginUser:
    user: str
    distribution: str  # "" when the image says nothing burst knows
    note: str = ""  # said to the person when the user is a guess


def login_user(image: dict) -> LoginUser:
    """The default SSH user of a DescribeImages entry."""
    text = " ".join(str(image.get(key) or "") for key in ("Name", "Description", "ImageLocation")).lower()
    for pattern, user, distribution in KNOWN_USERS:
        found = re.search(pattern, text)
        if found:
            return LoginUser(user, distribution.format(*[group for group in found.groups() if group]))
    owner = OWNERS.get(str(image.get("OwnerId", "")))
    if owner:
        return LoginUser(*owner)
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
