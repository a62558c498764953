"""User strategy modules, written to a temporary folder as a user would write them.

``install(root)`` writes them plus a real ``*.dist-info`` folder whose ``entry_points.txt``
declares strategies in the ``tradingd.strategies`` group, so importlib.metadata finds them once
``root`` is on ``sys.path`` (or ``PYTHONPATH``), exactly as for an installed package.
"""

from __future__ import annotations

from pathlib import Path

MODULES = ("mystrats", "bare", "raising", "needsdep")

# The README's "Your own strategy" example, verbatim.
README_EXAMPLE = '''\
"""My strategies."""

from pydantic import Field

from core.enums import Side
from core.intents import close, enter
from strategies.base import NO_INTENTS, Strategy, StrategyParams, exit_quantity


class DipParams(StrategyParams):
    drops: int = Field(3, ge=1, description="lower closes in a row before buying")
    hold: int = Field(5, ge=1, description="bars to hold before selling")


class BuyTheDip(Strategy[DipParams]):
    """Buy after `drops` lower closes in a row; sell `hold` bars later."""

    Params = DipParams

    def __init__(self, params=None, strategy_id=None):
        super().__init__(params, strategy_id)
        self.last = {}  # symbol -> (last close, lower closes in a row, bars held)

    def on_bar(self, ctx, bar):
        s = bar.symbol
        prev, drops, held = self.last.get(s, (bar.close, 0, 0))
        drops = drops + 1 if bar.close < prev else 0
        held = held + 1 if ctx.position(s) > 0 else 0
        self.last[s] = (bar.close, drops, held)
        if held >= self.params.hold and exit_quantity(ctx, s) > 0:
            return [close(s, exit_quantity(ctx, s), "time exit")]
        if ctx.position(s) == 0 and ctx.pending(s) == 0 and drops >= self.params.drops:
            return [enter(s, Side.BUY, "dip")]
        return NO_INTENTS
'''

# More classes in the same module, each wrong in its own way.
EXTRAS = '''

from pydantic import BaseModel, ConfigDict


def helper():
    return 1


class NoOnBar(Strategy):
    """Forgot on_bar."""


class LooseParams(Strategy):
    """Params that are not frozen."""

    class Params(BaseModel):
        model_config = ConfigDict(frozen=False)
        x: int = 1

    def on_bar(self, ctx, bar):
        return ()


class Exploding(Strategy):
    """Its constructor raises."""

    def __init__(self, params=None, strategy_id=None):
        raise RuntimeError("no licence key")

    def on_bar(self, ctx, bar):
        return ()
'''
MYSTRATS = README_EXAMPLE + EXTRAS

BARE = '''\
from core.enums import Side
from core.intents import enter
from strategies.base import Strategy


class Bare(Strategy):
    def on_bar(self, ctx, bar):
        return [enter(bar.symbol, Side.BUY, "always")] if ctx.position(bar.symbol) == 0 else []
'''

RAISING = '''\
"""A module that fails while importing."""
RATE = 1 / 0
'''

NEEDSDEP = '''\
"""A module whose own dependency is missing."""
import not_installed_dependency_xyz  # noqa: F401
'''

ENTRY_POINTS = '''\
[tradingd.strategies]
buy_the_dip = mystrats:BuyTheDip
bare = bare:Bare
broken_ep = mystrats:Missing
sma_cross = mystrats:BuyTheDip
'''


def install(root: Path) -> Path:
    """Write the modules and the distribution metadata under ``root``; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("mystrats", MYSTRATS), ("bare", BARE), ("raising", RAISING), ("needsdep", NEEDSDEP)):
        (root / f"{name}.py").write_text(text)
    dist = root / "tradingd_user_example-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tradingd-user-example\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return root
