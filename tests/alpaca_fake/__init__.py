"""A wire-faithful local Alpaca server for tests: trading REST, market-data REST, the trade_updates
stream and the msgpack market-data streams, on 127.0.0.1, driven by the real alpaca-py clients.

>>> from tests.alpaca_fake import FakeAlpaca
>>> with FakeAlpaca(symbols=("SPY",)) as fake:
...     fake.rest_url.startswith("http://127.0.0.1:"), len(fake.advance(2))
(True, 4)
"""

from tests.alpaca_fake.faults import Faults
from tests.alpaca_fake.server import FakeAlpaca

__all__ = ["FakeAlpaca", "Faults"]
