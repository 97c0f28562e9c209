"""vCPU quotas: would the fleet fit in the account's EC2 quotas? Read through Service Quotas, where allowed.

EC2 counts running instances in vCPUs per class of instance family, separately
for on-demand and spot. burst reads the applied quota (``servicequotas:GetServiceQuota``)
and compares it with the whole fleet of the plan; without the permission, or
for a class it does not know, the plan says the quota was not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from burst.retry import aws_config

# class -> (on-demand quota code, spot quota code); names as in the Service Quotas console
QUOTA_CODES = {
    "Standard (A, C, D, H, I, M, R, T, Z)": ("L-1216C47A", "L-34B43A08"),
    "F": ("L-74FC7D96", "L-88CF9481"),
    "G and VT": ("L-DB2E81BA", "L-3819A6DF"),
    "P": ("L-417A185B", "L-7212CCBC"),
    "X": ("L-7295265B", "L-E3A00192"),
}


def quota_class(instance_type: str) -> str | None:
    """The quota class of an instance type (``c5.large`` -> Standard), None when burst does not know it."""
    prefix = re.match(r"[a-z]+", instance_type.lower())
    letters = prefix.group(0) if prefix else ""
    if not letters or letters.startswith(("inf", "dl", "trn", "hpc", "mac", "u")):
        return None
    if letters.startswith("vt") or letters[0] == "g":
        return "G and VT"
    if letters[0] in "acdhimrtz":
        return "Standard (A, C, D, H, I, M, R, T, Z)"
    return letters[0].upper() if letters[0].upper() in QUOTA_CODES else None


@dataclass
class QuotaNeed:
    """vCPUs the plan's fleet needs in one quota class and market."""

    quota_class: str
    spot: bool
    vcpus: int
    quota: float | None = None  # the account's applied quota; None = not read

    @property
    def label(self) -> str:
        return f"Running {'Spot' if self.spot else 'On-Demand'} {self.quota_class} instances"

    def warning(self, region: str) -> str | None:
        if self.quota is None or self.vcpus <= self.quota:
            return None
        return (f"the fleet needs {self.vcpus} vCPUs of '{self.label}', and this account's quota in {region} is "
                f"{self.quota:g} (other running instances count too): ask for more in the Service Quotas "
                f"console, or run fewer machines at once with --machines")


def read_quotas(session, region: str, needs: list[QuotaNeed], notes: list[str]) -> None:
    """Fill each need's quota from Service Quotas; a note (not an error) when it cannot be read."""
    if not needs:
        return
    try:
        client = session.client("service-quotas", region_name=region,
                                 config=aws_config(max_attempts=3, connect_timeout=5, read_timeout=15))
        for need in needs:
            code = QUOTA_CODES[need.quota_class][1 if need.spot else 0]
            need.quota = float(client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
    except Exception as error:  # no permission, or a partition without the API: the plan goes on
        code = getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
        notes.append(f"vCPU quotas not checked: Service Quotas did not answer ({code}); "
                     f"burst needs servicequotas:GetServiceQuota")
