"""Domain kernel: events, commands, orders, portfolio accounting, clock, ports and the Engine.

Imports nothing of ours and no I/O library (see DESIGN.md).
"""
