"""The store keeps its schema revision in its own table, so Optuna's studies (which keep theirs in
``alembic_version``) can live in the same database; databases made before that move over on open."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from state.config import StoreConfig
from state.migrations import VERSION_TABLE, alembic_config
from state.store import SqlStore


def _revision(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if table not in sa.inspect(conn).get_table_names():
                return []
            return list(conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalars())
    finally:
        engine.dispose()


def test_a_database_from_before_0005_moves_its_revision_and_upgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url=url), "0004_journal")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # what an older tradingd left: the revision in alembic_version
        conn.execute(sa.text(f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version"))
    engine.dispose()
    assert _revision(url, "alembic_version") == ["0004_journal"]
    with SqlStore(StoreConfig(database_url=url)) as store:
        assert store.last_reconciliation("default") is None  # 0005's table is there
    assert _revision(url, VERSION_TABLE) == ["0005_reconciliation"]
    assert _revision(url, "alembic_version") == []


def test_optuna_studies_and_the_state_share_one_database_in_either_order(tmp_path, postgres_url):
    import optuna

    for url in (f"sqlite:///{tmp_path / 'shared.db'}", f"sqlite:///{tmp_path / 'optuna-first.db'}", postgres_url):
        if "optuna-first" in url:
            optuna.storages.RDBStorage(url)  # Optuna creates its schema first this time
            SqlStore(StoreConfig(database_url=url)).close()
        else:
            SqlStore(StoreConfig(database_url=url)).close()
        storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://", 1))  # its check on
        study = optuna.create_study(storage=storage, study_name=f"s-{tmp_path.name}")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        with SqlStore(StoreConfig(database_url=url)) as store:  # opens and migrates fine beside it
            assert store.broker_account("default") is None
        assert _revision(url, VERSION_TABLE) == ["0005_reconciliation"]
        assert len(optuna.load_study(study_name=f"s-{tmp_path.name}", storage=storage).trials) == 2
