"""Alembic environment of the store, configured in code (no ``alembic.ini`` needed).

``env.py`` uses the connection handed over in ``Config.attributes["connection"]`` when there is
one (that is how :class:`state.store.SqlStore` migrates on open, inside its own transaction), and
otherwise builds an engine from the ``sqlalchemy.url`` main option, e.g. for the command line::

    python -c "from state.migrations import alembic_config; from alembic import command; \\
               command.upgrade(alembic_config(url='sqlite:///tradingd.db'), 'head')"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
"""Directory holding ``env.py``, ``script.py.mako`` and ``versions/``."""


def alembic_config(*, connection: Any = None, url: str | None = None) -> Config:
    """Return an Alembic :class:`~alembic.config.Config` for the store's migrations.

    Parameters
    ----------
    connection
        An open :class:`sqlalchemy.engine.Connection` the migrations run on (inside the caller's
        transaction); takes precedence over ``url``.
    url
        Database URL used when no connection is given (``env.py`` then creates its own engine).

    Returns
    -------
    alembic.config.Config
        A configuration pointing at :data:`SCRIPT_LOCATION`; no file is read.
    """
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


__all__ = ["SCRIPT_LOCATION", "alembic_config"]
