"""The one refusal staff see when a change to a ticket is not allowed (:class:`TicketError`)."""

from __future__ import annotations


class TicketError(ValueError):
    """A change staff asked for is not allowed (shown to them as a message)."""
