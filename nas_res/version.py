"""The installed resnas version (recorded with every study and run)."""

__version__ = "0.1.0"
