"""CRM customers: one record per registered or loyalty-card customer, some with a newer version."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.dirt import RATES, as_typed_emails, pick, spelled_flags
from datagen.period import Period
from datagen.personas import PERSONAS
from datagen.persons import COUNTRIES, Population
from datagen.strings import concat, digit_matrix, from_char_matrix, lookup, take, with_nulls
from datagen.timestamps import EPOCH_MS_STRING, ISO_OFFSET, ISO_UTC, NAIVE_UTC, format_times

LOYALTY_TIERS = ("bronze", "silver", "gold", "platinum")
CHANGED_SHARE = 0.15  # customers re-exported with a newer updated_at
CONSENT_EMAIL_SHARE = 0.7
CONSENT_ADS_SHARE = 0.55
PHONE_SHARE = 0.6
HANDLE_WITHOUT_AT_SHARE = 0.15  # typed into the CRM without the leading @
MISSING_BIRTH_YEAR_SHARE = 0.04
IMPOSSIBLE_BIRTH_YEARS = (1850, 2090)
CHANGE_EMAIL_CONSENT, CHANGE_ADS_CONSENT, CHANGE_TIER = range(3)


@dataclass(frozen=True)
class CustomerPlan:
    """The CRM's state: initial values per customer and the one later change some of them get."""

    person: np.ndarray  # ordered by customer number
    consent_email: np.ndarray
    consent_ads: np.ndarray
    tier: np.ndarray
    change_ms: np.ndarray  # -1: never changed
    change_kind: np.ndarray

    def emailable_at(self, epoch_ms: int) -> np.ndarray:
        """E-mail consent of each customer as the CRM held it at `epoch_ms`."""
        flipped = (
            (self.change_kind == CHANGE_EMAIL_CONSENT)
            & (self.change_ms >= 0)
            & (self.change_ms <= epoch_ms)
        )
        return self.consent_email ^ flipped


def plan_customers(
    population: Population, period: Period, rng: np.random.Generator
) -> CustomerPlan:
    """Who is a customer, their consent and tier, and which of them change during the period."""
    customers = np.flatnonzero(population.is_customer)
    customers = customers[np.argsort(population.signup_ms[customers], kind="stable")]
    n = len(customers)
    tier_shares = np.array([p.loyalty_tiers for p in PERSONAS])[population.persona[customers]]
    tier_cdf = np.cumsum(tier_shares, axis=1)
    tier = (rng.random(n)[:, None] > tier_cdf).sum(axis=1).clip(0, len(LOYALTY_TIERS) - 1)
    changed = rng.random(n) < CHANGED_SHARE
    change_ms = np.where(changed, rng.integers(period.start_ms, period.end_ms, n), -1)
    return CustomerPlan(
        person=customers,
        consent_email=rng.random(n) < CONSENT_EMAIL_SHARE,
        consent_ads=rng.random(n) < CONSENT_ADS_SHARE,
        tier=tier,
        change_ms=change_ms,
        change_kind=rng.integers(0, 3, n),
    )


@dataclass(frozen=True)
class CrmExport:
    """The full export as of the period start, the delta export of changed customers, and
    the persons whose social handle the CRM shows."""

    full: pa.Table
    delta: pa.Table
    shows_handle: np.ndarray
    impossible_birth_years: int  # rows
    missing_birth_years: int  # rows


def crm_tables(
    plan: CustomerPlan, population: Population, period: Period, rng: np.random.Generator
) -> CrmExport:
    """Render the CRM plan as the exports the CRM writes."""
    person = plan.person
    n = len(person)
    handles = take(population.handles, person)
    handle_shown = population.has_handle[person]
    handle_text = pc.if_else(pa.array(rng.random(n) < 0.3), pc.utf8_title(handles), handles)
    handle_text = pc.if_else(
        pa.array(rng.random(n) < HANDLE_WITHOUT_AT_SHARE),
        pc.utf8_slice_codeunits(handle_text, 1),
        handle_text,
    )
    country = population.country[person]
    calling_code = lookup(("49", "33", "31", "34", "39", "43", "44", "351", "1"), country)
    phone = concat(
        "+", calling_code, " ", from_char_matrix(digit_matrix(rng.integers(10**9, 10**10, n), 10))
    )
    birth_year = population.birth_year[person].copy()
    impossible = pick(rng, np.arange(n), RATES["impossible_birth_year"])
    birth_year[impossible] = rng.choice(IMPOSSIBLE_BIRTH_YEARS, len(impossible))
    missing_birth_year = (rng.random(n) < MISSING_BIRTH_YEAR_SHARE) & ~np.isin(
        np.arange(n), impossible
    )
    signup_days = (population.signup_ms[person] // 86_400_000).astype("datetime64[D]").astype(str)
    common = {
        "customer_id": take(population.customer_ids, person),
        "email": as_typed_emails(take(population.emails, person), rng),
        "phone": with_nulls(phone, rng.random(n) >= PHONE_SHARE),
        "user_id": take(population.user_ids, person),
        "social_handle": with_nulls(handle_text, ~handle_shown),
        "gender": lookup(("f", "m", "x"), population.gender[person]),
        "birth_year": pa.array(birth_year, mask=missing_birth_year),
        "city": take(population.city, person),
        "country": lookup([c[0] for c in COUNTRIES], country),
        "signup_date": pa.array(signup_days),
    }
    full_updated = population.signup_ms[person] + (
        rng.random(n) * (period.start_ms - population.signup_ms[person])
    ).astype(np.int64)
    full = _versions(
        common,
        np.arange(n),
        plan.consent_email,
        plan.consent_ads,
        plan.tier,
        full_updated,
        np.where(rng.random(n) < 0.75, NAIVE_UTC, ISO_UTC),
        population.utc_offset_minutes[person],
        rng,
    )
    changed = np.flatnonzero(plan.change_ms >= 0)
    kind = plan.change_kind[changed]
    delta = _versions(
        common,
        changed,
        plan.consent_email[changed] ^ (kind == CHANGE_EMAIL_CONSENT),
        plan.consent_ads[changed] ^ (kind == CHANGE_ADS_CONSENT),
        np.minimum(plan.tier[changed] + (kind == CHANGE_TIER), len(LOYALTY_TIERS) - 1),
        plan.change_ms[changed],
        np.where(rng.random(len(changed)) < 0.5, ISO_OFFSET, EPOCH_MS_STRING),
        population.utc_offset_minutes[person[changed]],
        rng,
    )
    return CrmExport(
        full=full,
        delta=delta,
        shows_handle=person[handle_shown],
        impossible_birth_years=len(impossible) + int(np.isin(changed, impossible).sum()),
        missing_birth_years=int(missing_birth_year.sum() + missing_birth_year[changed].sum()),
    )


def _versions(
    common: dict[str, pa.Array],
    rows: np.ndarray,
    consent_email: np.ndarray,
    consent_ads: np.ndarray,
    tier: np.ndarray,
    updated_ms: np.ndarray,
    time_format: np.ndarray,
    offsets: np.ndarray,
    rng: np.random.Generator,
) -> pa.Table:
    taken = {name: take(values, rows) for name, values in common.items()}
    return pa.table(
        {
            **taken,
            "consent_email": spelled_flags(consent_email, rng),
            "consent_ads": spelled_flags(consent_ads, rng),
            "loyalty_tier": lookup(LOYALTY_TIERS, tier),
            "updated_at": format_times(updated_ms, time_format, offsets),
        }
    )
