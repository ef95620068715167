from __future__ import annotations


class LabError(Exception):
    """The lab cannot be built, inspected or torn down; the message says why and what to do."""
