"""Where the shop's services are, read from the environment when a step needs it."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PAYMENT_TIMEOUT_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class ShopConfig:
    inventory_url: str
    payments_url: str
    shipping_url: str
    public_url: str  # where customers reach the shop (the payment page sends them back there)
    payment_timeout_seconds: float

    @classmethod
    def from_env(cls) -> ShopConfig:
        """``SHOP_INVENTORY_URL``, ``SHOP_PAYMENTS_URL``, ``SHOP_SHIPPING_URL``,
        ``SHOP_PUBLIC_URL`` and ``SHOP_PAYMENT_TIMEOUT_SECONDS`` (``saga up`` sets the URLs)."""
        env = os.environ.get
        return cls(
            inventory_url=env("SHOP_INVENTORY_URL", "http://127.0.0.1:8001").rstrip("/"),
            payments_url=env("SHOP_PAYMENTS_URL", "http://127.0.0.1:8002").rstrip("/"),
            shipping_url=env("SHOP_SHIPPING_URL", "http://127.0.0.1:8003").rstrip("/"),
            public_url=env("SHOP_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            payment_timeout_seconds=float(
                env("SHOP_PAYMENT_TIMEOUT_SECONDS", str(DEFAULT_PAYMENT_TIMEOUT_SECONDS))
            ),
        )
