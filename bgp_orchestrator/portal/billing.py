"""Plans, plan changes with proration, and invoices computed from usage x plan.

Money is :class:`~decimal.Decimal` dollars rounded to cents. A month's invoice:

* one base-fee line per plan the tenant had during the month, prorated by the
  share of the month it was active (a change takes effect at once);
* one line per metric with the usage above what the plans included, priced at
  the plan in force at the end of the period. Counters (API calls, updates)
  are summed over the month against each plan's allowance prorated the same
  way; sessions and prefixes are billed on the month's peak day against the
  final plan's whole allowance.

A tenant that never chose a plan is on :data:`DEFAULT_PLAN` since it was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg

from bgp_orchestrator.errors import InvalidInput
from bgp_orchestrator.usage import recorder
from bgp_orchestrator.usage.recorder import GAUGES, METRICS

CENT = Decimal("0.01")

METRIC_LABELS = {
    "api_calls": "API calls",
    "updates_processed": "BGP updates processed",
    "sessions_monitored": "BGP sessions monitored (peak)",
    "prefixes_monitored": "Prefixes monitored (peak)",
}


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    monthly: Decimal
    #: what the base fee includes per month, per metric
    included: dict[str, int]
    #: price of each unit above the allowance, per metric, and the unit's size
    overage: dict[str, tuple[Decimal, int]]


PLANS: dict[str, Plan] = {
    p.key: p
    for p in (
        Plan(
            "starter",
            "Starter",
            Decimal("49.00"),
            {
                "api_calls": 100_000,
                "updates_processed": 10_000_000,
                "sessions_monitored": 5,
                "prefixes_monitored": 50,
            },
            {
                "api_calls": (Decimal("0.50"), 10_000),
                "updates_processed": (Decimal("1.00"), 1_000_000),
                "sessions_monitored": (Decimal("5.00"), 1),
                "prefixes_monitored": (Decimal("0.20"), 1),
            },
        ),
        Plan(
            "team",
            "Team",
            Decimal("299.00"),
            {
                "api_calls": 1_000_000,
                "updates_processed": 200_000_000,
                "sessions_monitored": 50,
                "prefixes_monitored": 1_000,
            },
            {
                "api_calls": (Decimal("0.40"), 10_000),
                "updates_processed": (Decimal("0.60"), 1_000_000),
                "sessions_monitored": (Decimal("4.00"), 1),
                "prefixes_monitored": (Decimal("0.10"), 1),
            },
        ),
        Plan(
            "carrier",
            "Carrier",
            Decimal("1490.00"),
            {
                "api_calls": 10_000_000,
                "updates_processed": 5_000_000_000,
                "sessions_monitored": 500,
                "prefixes_monitored": 20_000,
            },
            {
                "api_calls": (Decimal("0.25"), 10_000),
                "updates_processed": (Decimal("0.30"), 1_000_000),
                "sessions_monitored": (Decimal("3.00"), 1),
                "prefixes_monitored": (Decimal("0.05"), 1),
            },
        ),
    )
}
DEFAULT_PLAN = "starter"


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def parse_month(text: str) -> date:
    try:
        year, month = (int(p) for p in text.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise InvalidInput(
            "invalid-month", "the month must be written YYYY-MM", "month", text
        ) from None


@dataclass(frozen=True)
class Period:
    plan: Plan
    start: datetime
    end: datetime
    share: Decimal  # of the whole month


@dataclass
class Line:
    description: str
    quantity: str
    unit_price: str
    amount: Decimal


@dataclass
class Invoice:
    number: str
    tenant: str
    month: date
    start: datetime
    end: datetime
    draft: bool
    lines: list[Line]
    usage: dict[str, int]

    @property
    def total(self) -> Decimal:
        return money(sum((line.amount for line in self.lines), Decimal(0)))


async def plan_history(conn: asyncpg.Connection, tenant_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT plan, started_at, changed_by FROM tenant_plans WHERE tenant_id = $1 "
        "ORDER BY started_at, id",
        tenant_id,
    )
    if rows:
        return [dict(r) for r in rows]
    created = await conn.fetchval("SELECT created_at FROM tenants WHERE id = $1", tenant_id)
    return [{"plan": DEFAULT_PLAN, "started_at": created, "changed_by": "default"}]


async def current_plan(conn: asyncpg.Connection, tenant_id: int) -> Plan:
    history = await plan_history(conn, tenant_id)
    return PLANS.get(history[-1]["plan"], PLANS[DEFAULT_PLAN])


def periods(
    history: list[dict[str, Any]], start: datetime, end: datetime, month_len: timedelta
) -> list[Period]:
    """The plans in force between ``start`` and ``end``, each with its share of the month."""
    out = []
    for i, entry in enumerate(history):
        begins = max(entry["started_at"], start)
        ends = min(history[i + 1]["started_at"], end) if i + 1 < len(history) else end
        if ends <= begins:
            continue
        share = Decimal((ends - begins).total_seconds()) / Decimal(month_len.total_seconds())
        out.append(Period(PLANS.get(entry["plan"], PLANS[DEFAULT_PLAN]), begins, ends, share))
    return out


@dataclass(frozen=True)
class Proration:
    current: Plan
    target: Plan
    remaining_share: Decimal
    credit: Decimal
    charge: Decimal

    @property
    def net(self) -> Decimal:
        return money(self.charge - self.credit)


def proration(current: Plan, target: Plan, now: datetime) -> Proration:
    """What changing from ``current`` to ``target`` at ``now`` does to this month's bill."""
    start, end = month_bounds(now.date())
    remaining = Decimal((end - now).total_seconds()) / Decimal((end - start).total_seconds())
    return Proration(
        current,
        target,
        remaining,
        money(current.monthly * remaining),
        money(target.monthly * remaining),
    )


async def change_plan(conn: asyncpg.Connection, tenant_id: int, key: str, who: str) -> Plan:
    if key not in PLANS:
        raise InvalidInput("unknown-plan", f"plan must be one of {', '.join(PLANS)}", "plan", key)
    async with conn.transaction():
        history = await plan_history(conn, tenant_id)
        if history[-1]["plan"] == key:
            raise InvalidInput("plan-unchanged", f"the tenant is on {PLANS[key].name} already")
        if history[-1]["changed_by"] == "default":  # make the implicit first plan explicit
            await conn.execute(
                "INSERT INTO tenant_plans (tenant_id, plan, started_at, changed_by) "
                "VALUES ($1, $2, $3, 'default')",
                tenant_id,
                history[-1]["plan"],
                history[-1]["started_at"],
            )
        await conn.execute(
            "INSERT INTO tenant_plans (tenant_id, plan, changed_by) VALUES ($1, $2, $3)",
            tenant_id,
            key,
            who,
        )
    return PLANS[key]


def _fmt(n: int) -> str:
    return f"{n:,}"


async def invoice(
    conn: asyncpg.Connection, tenant_id: int, month: date, now: datetime | None = None
) -> Invoice:
    """The invoice of ``month`` (to date, marked draft, while the month runs)."""
    now = now or datetime.now(UTC)
    tenant = await conn.fetchrow(
        "SELECT slug, name, created_at FROM tenants WHERE id = $1", tenant_id
    )
    month_start, month_end = month_bounds(month)
    if tenant is None or month_start > now or month_end <= tenant["created_at"]:
        raise InvalidInput(
            "no-invoice", f"there is no invoice for {month:%Y-%m}", "month", f"{month:%Y-%m}"
        )
    draft = now < month_end
    end = min(now, month_end)
    start = max(month_start, tenant["created_at"])
    history = await plan_history(conn, tenant_id)
    spans = periods(history, start, end, month_end - month_start)
    usage = await recorder.totals(
        conn, tenant_id, start.date(), (end - timedelta(seconds=1)).date()
    )
    lines: list[Line] = []
    for span in spans:
        days = (span.end - span.start).total_seconds() / 86400
        until = span.end - timedelta(seconds=1)
        lines.append(
            Line(
                f"{span.plan.name} plan, {span.start:%d %b} - {until:%d %b} ({days:.1f} days)",
                f"{span.share:.4f} month",
                f"{span.plan.monthly:,.2f}",
                money(span.plan.monthly * span.share),
            )
        )
    final = spans[-1].plan if spans else PLANS[DEFAULT_PLAN]
    for metric in METRICS:
        if metric in GAUGES:  # billed on the peak day: the plan's allowance, whole
            allowance = final.included[metric]
        else:  # summed over the month: each plan's allowance for its share of it
            allowance = int(sum(span.plan.included[metric] * span.share for span in spans))
        used = usage[metric]
        over = max(0, used - allowance)
        price, unit = final.overage[metric]
        units = -(-over // unit)  # started units count
        unit_text = "" if unit == 1 else f" per {unit:,}"
        lines.append(
            Line(
                f"{METRIC_LABELS[metric]}: {_fmt(used)} used, {_fmt(allowance)} included",
                _fmt(units) if over else "0",
                f"{price:,.2f}{unit_text}",
                money(price * units),
            )
        )
    return Invoice(
        f"BGPO-{tenant['slug'].upper()}-{month:%Y%m}",
        tenant["name"],
        month,
        start,
        end,
        draft,
        lines,
        usage,
    )


def months(created: datetime, now: datetime) -> list[date]:
    """Every month from the tenant's first to the current one, newest first."""
    out = []
    cursor = date(created.year, created.month, 1)
    last = date(now.year, now.month, 1)
    while cursor <= last:
        out.append(cursor)
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return out[::-1][:36]
