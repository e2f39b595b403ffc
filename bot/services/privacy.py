"""Personal data shown to staff: one masking rule for every feature."""

from __future__ import annotations


def mask_phone(phone: str | None) -> str:
    """'13800138000' → '138****8000'; short numbers are masked whole, never shown."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:]
