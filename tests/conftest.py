import pytest

from tests.support import load_two_symbols


@pytest.fixture(scope="session")
def two_symbols():
    """SPY and AAPL hourly bars, 2018-2019 (real data from the bundled sample)."""
    return load_two_symbols()
