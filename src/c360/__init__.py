"""c360: a graph-centric customer identity and profile service."""

__version__ = "0.1.0"
