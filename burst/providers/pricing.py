"""What machines cost per hour: on-demand from the AWS Price List API, spot from the spot price history.

On-demand prices come from ``pricing:GetProducts`` (Linux, shared tenancy, no
pre-installed software, in the campaign's region), through boto3's ``pricing``
client, whose endpoint the standard ``AWS_ENDPOINT_URL_PRICING`` may move. They
change rarely, so they are cached under ``$BURST_HOME/prices/`` for a day.

Spot prices come from ``DescribeSpotPriceHistory``: the latest price per
availability zone. They change often and are never cached.

A price that cannot be read (no permission, no route to the Price List API, a
type it does not list) is ``None``: the plan says "price unknown" and the
campaign carries on. Reading prices never stops a campaign.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from burst.atomic import write_atomically
from burst.retry import aws_config

CACHE_SECONDS = 24 * 3600
PRICE_LIST_REGION = "us-east-1"  # one of the Price List API's own endpoints; it answers for every region
PRICING_CONFIG = dict(max_attempts=3, connect_timeout=5, read_timeout=15)  # an unknown price must not hold up a plan

ON_DEMAND = "on-demand"
SPOT = "spot"
LOCAL = "local"


@dataclass
class PriceBook:
    """Prices of the campaign's instance types in one region, USD per hour; None = unknown."""

    region: str
    on_demand: dict[str, float | None] = field(default_factory=dict)
    spot: dict[str, dict[str, float]] = field(default_factory=dict)  # type -> availability zone -> price
    notes: list[str] = field(default_factory=list)  # why a price is unknown
    fresh: dict[str, float] = field(default_factory=dict)  # on-demand prices just read, not cached yet
    extra_per_hour: float = 0.0  # what every machine costs beyond its type: its --disk-gb volume, its public IPv4 address

    def price(self, instance_type: str, lifecycle: str, zone: str = "") -> float | None:
        """One machine's price: spot in its zone (else the zones' highest), or on-demand; with its extras."""
        if lifecycle == LOCAL:
            return 0.0
        if lifecycle == SPOT:
            zones = self.spot.get(instance_type) or {}
            base = zones.get(zone) if zone in zones else (max(zones.values()) if zones else None)
        else:
            base = self.on_demand.get(instance_type)
        return None if base is None else base + self.extra_per_hour

    @classmethod
    def free(cls, types: list[str]) -> "PriceBook":
        """Local sandboxes cost nothing beyond this machine."""
        return cls(region=LOCAL, on_demand={t: 0.0 for t in types})


GP3_PER_GB_MONTH = 0.08  # USD, gp3 storage (us-east-1), billed per second of the volume's life
HOURS_PER_MONTH = 730  # AWS's month for EBS prices
PUBLIC_IPV4_PER_HOUR = 0.005  # USD per public IPv4 address per hour, in use or not (since February 2024)


def machine_extras(disk_gb: int | None, public_ipv4: bool) -> tuple[float, list[str]]:
    """USD per hour a machine costs beyond its instance type, and the words saying what that is."""
    per_hour, parts = 0.0, []
    if disk_gb:
        disk = disk_gb * GP3_PER_GB_MONTH / HOURS_PER_MONTH
        per_hour += disk
        parts.append(f"a {disk_gb} GiB gp3 root volume (${disk:.4f}/h)")
    if public_ipv4:
        per_hour += PUBLIC_IPV4_PER_HOUR
        parts.append(f"a public IPv4 address (${PUBLIC_IPV4_PER_HOUR:.3f}/h)")
    return per_hour, parts


def read_prices(session, ec2, region: str, types: list[str], spot: bool, cache_dir: Path) -> PriceBook:
    """Every price the account lets burst read; never raises for a price it cannot read.

    Writes nothing: a refused or dry run leaves ``$BURST_HOME`` as it was. A run
    that goes ahead keeps the new prices with :func:`remember_prices`.
    """
    book = PriceBook(region=region)
    book.on_demand = _on_demand(session, region, sorted(set(types)), _read_cache(_cache_file(cache_dir, region)), book)
    if spot:
        book.spot = _spot(ec2, sorted(set(types)), book.notes)
    return book


# -- on-demand: the Price List API, cached for a day ------------------------------------

def _cache_file(cache_dir: Path, region: str) -> Path:
    return cache_dir / f"on-demand-{region}.json"


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _on_demand(session, region: str, types: list[str], cache: dict[str, dict[str, Any]],
               book: PriceBook) -> dict[str, float | None]:
    now = time.time()
    prices: dict[str, float | None] = {}
    for instance_type in types:
        cached = cache.get(instance_type)
        if isinstance(cached, dict) and now - float(cached.get("at", 0)) < CACHE_SECONDS:
            prices[instance_type] = cached.get("usd")
            continue
        try:
            price = _get_product_price(session, region, instance_type)
        except Exception as error:  # no permission, no route: say so once, carry on without prices
            book.notes.append(f"on-demand prices unknown: the Price List API did not answer ({_why(error)}); "
                              f"burst needs pricing:GetProducts")
            for rest in types:
                prices.setdefault(rest, None)
            break
        prices[instance_type] = price
        if price is None:
            book.notes.append(f"no on-demand price listed for {instance_type} in {region}")
        else:
            book.fresh[instance_type] = price
    return prices


def remember_prices(book: PriceBook, cache_dir: Path) -> None:
    """Keep the on-demand prices just read for a day (atomically: a reader never sees half a file)."""
    if not book.fresh:
        return
    path = _cache_file(cache_dir, book.region)
    cache = _read_cache(path)
    now = time.time()
    cache.update({kind: {"usd": price, "at": now} for kind, price in book.fresh.items()})
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    book.fresh.clear()


def _get_product_price(session, region: str, instance_type: str) -> float | None:
    client = session.client("pricing", region_name=PRICE_LIST_REGION, config=aws_config(**PRICING_CONFIG))
    filters = {
        "ServiceCode": "AmazonEC2", "instanceType": instance_type, "regionCode": region,
        "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    response = client.get_products(
        ServiceCode="AmazonEC2", MaxResults=10,
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items() if k != "ServiceCode"],
    )
    return on_demand_price_of(response.get("PriceList", []))


def on_demand_price_of(price_list: list[Any]) -> float | None:
    """The hourly USD price in a ``GetProducts`` answer: each item is a JSON document (a string)."""
    for item in price_list:
        product = json.loads(item) if isinstance(item, str) else item
        for term in (product.get("terms", {}).get("OnDemand") or {}).values():
            for dimension in (term.get("priceDimensions") or {}).values():
                usd = (dimension.get("pricePerUnit") or {}).get("USD")
                if usd is not None and str(dimension.get("unit", "Hrs")).lower().startswith("hr"):
                    value = float(usd)
                    if value > 0:
                        return value
    return None


# -- spot: the latest price per zone ------------------------------------------------------

def _spot(ec2, types: list[str], notes: list[str]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, tuple[datetime, float]]] = {t: {} for t in types}
    try:
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=types, ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            StartTime=datetime.now(timezone.utc),
        )
        for page in pages:
            for entry in page.get("SpotPriceHistory", []):
                when = entry.get("Timestamp") or datetime.min.replace(tzinfo=timezone.utc)
                zone, kind = entry.get("AvailabilityZone", ""), entry.get("InstanceType", "")
                if kind in found and (zone not in found[kind] or found[kind][zone][0] < when):
                    found[kind][zone] = (when, float(entry["SpotPrice"]))
    except Exception as error:
        notes.append(f"spot prices unknown: DescribeSpotPriceHistory failed ({_why(error)}); "
                     f"burst needs ec2:DescribeSpotPriceHistory")
        return {}
    return {t: {zone: price for zone, (_, price) in zones.items()} for t, zones in found.items() if zones}


def _why(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code"):
        return str(response["Error"]["Code"])
    return type(error).__name__
