"""Money at the Stripe boundary: amounts are Decimal inside Ahoum, integers in Stripe's API."""

from decimal import Decimal

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                "VUV", "XAF", "XOF", "XPF"}  # fmt: skip
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}
# The currencies Stripe charges in (its "presentment currencies", copied 2026-12 from
# https://docs.stripe.com/currencies#presentment-currencies): an event's price must be in one
# of them (events.models.validate_currency). The list is for cards; other payment methods are
# often tied to one currency.
STRIPE_CURRENCIES = frozenset({
    "USD", "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD",
    "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL",
    "HTG", "HUF", "IDR", "ILS", "INR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "STD", "SZL",
    "THB", "TJS", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "UYU", "UZS", "VND",
    "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW"
})  # fmt: skip


# The most one Stripe charge may be, in minor units ($999,999.99; the same 8 digits for the
# other currencies in Stripe's docs: https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
STRIPE_MAX_AMOUNT_MINOR = 99_999_999


def minor_unit_exponent(currency: str) -> int:
    """How many decimals the currency's amounts have in Stripe (2, or 0 for yen, 3 for dinars)."""
    return 0 if currency.upper() in ZERO_DECIMAL else 3 if currency.upper() in THREE_DECIMAL else 2


def minor_units(amount: Decimal, currency: str) -> int:
    """Stripe amounts are integers in the currency's smallest unit (cents, or yen)."""
    return int((amount * (10 ** minor_unit_exponent(currency))).to_integral_value())


def from_minor_units(amount: int, currency: str) -> Decimal:
    """A Stripe amount (minor units) as a Decimal of the currency's units."""
    return Decimal(amount).scaleb(-minor_unit_exponent(currency))
