"""Alpaca adapters (alpaca-py 0.44, pinned: the in-loop stream recipe uses its private
``_run_forever``/``_start_ws``): the broker, the order-update stream, the market-data feed, history
download and the broker side of reconciliation. See ``../shared/ALPACA_MQTT_NOTES.md`` for the wire
protocols and the SDK's gotchas these modules work around.
"""
