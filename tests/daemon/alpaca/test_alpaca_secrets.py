"""A planted Alpaca key pair never shows: a real `tradingd run --broker alpaca` session with MQTT
telemetry, DEBUG JSON logs and injected faults (an HTML 502, a stall, dropped streams), then
`tradingd reconcile` with a wrong secret; the key id and secret are searched for in every log
line, every MQTT message the operator could read and every table of the state database."""

from __future__ import annotations

import shutil
import subprocess
import time

import sqlalchemy as sa

from tests.alpaca_fake import FakeAlpaca
from tests.daemon.alpaca.test_run_alpaca import TRADINGD, _config, _env, _Market, _stop, _wait
from tests.mqtt_broker import DAEMON, OPERATOR, PREFIX, mosquitto  # noqa: F401  (fixture)

KEY_ID = "PKPLANTEDKEY7Q2Z"
SECRET = "planted-Secret-9x8y7w6v"


def _dump(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            parts = []
            for table in sa.inspect(conn).get_table_names():
                parts += [repr(tuple(row)) for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
            return "\n".join(parts)
    finally:
        engine.dispose()


def test_a_planted_key_never_reaches_logs_mqtt_or_the_database(tmp_path, mosquitto):  # noqa: F811
    assert shutil.which("mosquitto_sub"), "mosquitto-clients is required (scripts/services.sh installs it)"
    with FakeAlpaca(symbols=("SPY", "QQQ"), key_id=KEY_ID, secret_key=SECRET) as fake:
        mqtt = f'''
[mqtt]
port = {mosquitto.port}
username = "{DAEMON[0]}"
password_env = "TT_DAEMON_PASSWORD"
prefix = "{PREFIX}"
keepalive_s = 5
reconnect_min_s = 0.05
reconnect_max_s = 0.5
'''
        config = _config(tmp_path, fake, extra=mqtt)
        text = config.read_text().replace('account = "alpaca-paper"', 'account = "paper"')
        config.write_text(text.replace('level = "INFO"', 'level = "DEBUG"'))
        capture = (tmp_path / "mqtt.txt").open("w")
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-u", OPERATOR[0],
                                "-P", OPERATOR[1], "-t", f"{PREFIX}/#", "-v"], stdout=capture,
                               stderr=subprocess.STDOUT)
        log = tmp_path / "daemon.log"
        env = {**_env(fake), "TT_DAEMON_PASSWORD": DAEMON[1]}
        daemon = subprocess.Popen([TRADINGD, "run", "-c", str(config)], env=env, stdout=log.open("ab"),
                                  stderr=subprocess.STDOUT)
        try:
            with _Market(fake, 0.05):
                _wait(lambda: len(fake.orders()) >= 2, 60, "the first orders")
                fake.faults.server_error(2, status=502, html=True, path="/v2/orders", method="POST")
                fake.faults.stall(1, 2.0, path="/v2/orders", method="POST", execute=True)
                fake.faults.drop_trading_stream(refuse_for=0.5)
                fake.faults.drop_data_stream(refuse_for=0.5)
                count = len(fake.orders())
                _wait(lambda: len(fake.orders()) >= count + 3, 60, "orders after the faults")
            time.sleep(1.0)
            assert daemon.poll() is None, log.read_text()[-3000:]
            assert _stop(daemon) == 0, log.read_text()[-3000:]
        finally:
            if daemon.poll() is None:
                daemon.kill()
            sub.terminate()
            sub.wait(timeout=10)
            capture.close()
        wrong = subprocess.run([TRADINGD, "reconcile", "-c", str(config)], capture_output=True, text=True,
                               env={**env, "ALPACA_API_SECRET_KEY": SECRET + "-wrong"}, timeout=60)
        assert wrong.returncode == 2, wrong.stdout + wrong.stderr  # a clear error, not a traceback
    texts = {"daemon log": log.read_text(), "mqtt": (tmp_path / "mqtt.txt").read_text(),
             "reconcile output": wrong.stdout + wrong.stderr,
             "database": _dump(f"sqlite:///{tmp_path / 'state.db'}")}
    assert '"level": "debug"' in texts["daemon log"] and "tt/paper/" in texts["mqtt"]  # they captured plenty
    for where, text in texts.items():
        for secret in (KEY_ID, SECRET):
            assert secret not in text, f"{secret[:4]}… found in the {where}"
