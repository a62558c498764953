"""Adapters of the live node to the outside world: MQTT (bars in, telemetry out, control), later Alpaca.

Adapters turn wire formats into ``core`` events and commands at the boundary and hand them to the
node's queue; they never call the engine.
"""
