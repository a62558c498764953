"""Replay node: historical bar sources, the time-ordered bar merge, the simulated broker."""
