"""Strategies: the Strategy base class, the registry of built-ins, and the built-ins themselves."""
