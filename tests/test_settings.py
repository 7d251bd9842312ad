"""Settings: YAML, WATCHDOG_ overrides, the plain VIDEOSDK_ variables, secrets kept secret."""

from pathlib import Path

import pytest

from watchdog.problems import ConfigError
from watchdog.settings import load_config

SECRET = "s3cr3t-value-never-logged"

CONFIG = f"""\
videosdk:
  base_url: http://127.0.0.1:9/
  api_key: key-from-file
  secret_key: {SECRET}
poll:
  interval: 15s
  concurrency: 4
watch:
  participants:
    - {{session: s1, participant: p1}}
rules: [rules.yaml]
notifiers:
  console: {{type: console}}
state:
  url: state/watchdog.db
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VIDEOSDK_API_KEY", "VIDEOSDK_SECRET_KEY", "VIDEOSDK_TOKEN", "WATCHDOG_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _write(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_yaml_values_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path)))
    settings = config.settings
    assert settings.videosdk.base_url == "http://127.0.0.1:9"
    assert settings.poll.interval.total_seconds() == 15
    assert settings.watch.participants[0].participant == "p1"
    assert config.rule_paths == [tmp_path / "rules.yaml"]
    assert config.state_url == str(tmp_path / "state" / "watchdog.db")


def test_environment_overrides_with_prefix_and_nesting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_POLL__INTERVAL", "45s")
    monkeypatch.setenv("WATCHDOG_VIDEOSDK__API_KEY", "key-from-watchdog-env")
    monkeypatch.setenv("VIDEOSDK_SECRET_KEY", "secret-from-plain-env")
    settings = load_config(str(_write(tmp_path))).settings
    assert settings.poll.interval.total_seconds() == 45
    assert settings.poll.concurrency == 4  # untouched siblings keep the file's value
    assert settings.videosdk.api_key == "key-from-watchdog-env"
    assert settings.videosdk.secret_key is not None
    assert settings.videosdk.secret_key.get_secret_value() == "secret-from-plain-env"


def test_watchdog_prefix_beats_plain_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEOSDK_API_KEY", "plain")
    monkeypatch.setenv("WATCHDOG_VIDEOSDK__API_KEY", "prefixed")
    assert load_config(str(_write(tmp_path))).settings.videosdk.api_key == "prefixed"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_CONFIG", str(_write(tmp_path)))
    assert load_config().path == str(tmp_path / "config.yaml")


def test_secrets_never_in_repr_or_errors(tmp_path: Path) -> None:
    config = load_config(str(_write(tmp_path)))
    assert SECRET not in repr(config.settings)
    assert SECRET not in str(config.settings)
    bad = CONFIG.replace("concurrency: 4", "concurrency: many").replace(
        "api_key: key-from-file", f"api_key: [{SECRET}]"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(_write(tmp_path, bad)))
    assert SECRET not in str(caught.value)


def test_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = (
        CONFIG.replace("concurrency: 4", "concurrency: many")
        .replace("interval: 15s", "interval: soon")
        .replace("state:", "stat:")
    )
    path = _write(tmp_path, bad)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:6: poll.interval: 'soon' is not a duration like 30s, 5m or 1h30m "
        "(units: ms s m h d)",
        f"{path}:7: poll.concurrency: Input should be a valid integer, unable to parse string "
        "as an integer",
        f"{path}:14: unknown key 'stat': did you mean 'state'?",
    ]


def test_error_from_a_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_POLL__CONCURRENCY", "lots")
    with pytest.raises(ConfigError) as caught:
        load_config(str(_write(tmp_path)))
    assert str(caught.value).startswith(
        "environment variable WATCHDOG_POLL__CONCURRENCY: poll.concurrency:"
    )


def test_named_but_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_notifier_without_type(tmp_path: Path) -> None:
    path = _write(tmp_path, CONFIG.replace("{type: console}", "{stream: stdout}"))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (
        f"{path}:12: notifiers: notifier 'console' needs a 'type' (e.g. type: console)"
    )
