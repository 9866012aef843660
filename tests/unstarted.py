"""An inventory that is never started (no API call), for unit tests of what it routes and holds."""

from __future__ import annotations

from kubernetes.client import ApiClient

from certpolicy.inventory.interest import Reads
from certpolicy.inventory.inventory import Inventory


def inventory_with(policies: dict[str, Reads]) -> tuple[Inventory, list[list[str]]]:
    """An inventory with ``policies`` declared as they would be, and the wake-ups it sends. Its
    stores are fed by hand (``inv.secrets.upsert(obj)``)."""
    inv = Inventory(ApiClient())
    woken: list[list[str]] = []
    inv.wake_with(woken.append)
    inv._reads.update(policies)  # noqa: SLF001 - declare() would read named objects from the API
    return inv, woken
