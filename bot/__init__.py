"""乡法通 (lawbot): legal-education answers for villagers on WeChat."""

__version__ = "0.1.0"
