"""The vendor API's values (``docs/vendor-api.yaml``): catalog items, order requests and
orders, with money as :class:`~decimal.Decimal` (strings on the wire)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, NotRequired, TypedDict

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agent.wire.device import Sku

# Responses ignore unknown fields so a vendor adding one does not break deployed agents.
_RESPONSE = ConfigDict(frozen=True, extra="ignore")


class OrderBody(TypedDict):
    """The JSON body of ``POST /orders``."""

    sku: str
    quantity: int
    test: bool
    max_unit_price: NotRequired[str]  # a decimal string: never a float
    client_ref: NotRequired[str]
    allow_substitute: NotRequired[bool]


class Availability(StrEnum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        """No further change will come (delivered, cancelled or rejected)."""
        return self in (OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class CatalogItem(BaseModel):
    """A product with its current price, availability and lead time."""

    model_config = _RESPONSE

    sku: str
    name: str
    price: Money
    currency: str
    availability: Availability
    lead_time_days: float = Field(gt=0)
    lead_time_sd_days: float = Field(default=0.0, ge=0)
    substitutes: tuple[str, ...] = ()
    pack_size: int = Field(ge=1)
    unit: str
    free_shipping_threshold: Money | None = None
    shipping_fee: Money = Decimal(0)


class OrderRequest(BaseModel):
    """What to buy; ``max_unit_price`` makes the vendor reject a higher current price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: Sku
    quantity: int = Field(ge=1, le=1000)
    max_unit_price: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    test: bool = False
    client_ref: str | None = Field(default=None, min_length=1, max_length=128)
    allow_substitute: bool = False

    def to_wire(self) -> OrderBody:
        body: OrderBody = {"sku": self.sku, "quantity": self.quantity, "test": self.test}
        if self.max_unit_price is not None:
            body["max_unit_price"] = str(self.max_unit_price)
        if self.client_ref is not None:
            body["client_ref"] = self.client_ref
        if self.allow_substitute:
            body["allow_substitute"] = True
        return body


class StatusChange(BaseModel):
    model_config = _RESPONSE

    status: OrderStatus
    at: AwareDatetime


class Order(BaseModel):
    """An order as the vendor reports it; ``replayed`` marks a replayed first response."""

    model_config = _RESPONSE

    id: str = Field(min_length=1, max_length=128)
    idempotency_key: str
    client_ref: str | None = None
    sku: str
    requested_sku: str | None = None
    quantity: int = Field(ge=1)
    pack_size: int = Field(default=1, ge=1)
    unit: str | None = None
    unit_price: Money
    currency: str
    shipping: Money = Decimal(0)
    total: Money
    test: bool = False
    status: OrderStatus
    reject_reason: str | None = None
    created_at: AwareDatetime
    cancel_until: AwareDatetime | None = None
    expected_delivery: AwareDatetime | None = None
    history: tuple[StatusChange, ...] = ()
    replayed: bool = False


class OrderList(BaseModel):
    model_config = _RESPONSE

    orders: tuple[Order, ...]
