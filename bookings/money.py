"""Money at the Stripe boundary: amounts are Decimal inside Ahoum, integers in Stripe's API."""

from decimal import Decimal

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                "VUV", "XAF", "XOF", "XPF"}  # fmt: skip
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}


def minor_units(amount: Decimal, currency: str) -> int:
    """Stripe amounts are integers in the currency's smallest unit (cents, or yen)."""
    exponent = (
        0 if currency.upper() in ZERO_DECIMAL else 3 if currency.upper() in THREE_DECIMAL else 2
    )
    return int((amount * (10**exponent)).to_integral_value())
