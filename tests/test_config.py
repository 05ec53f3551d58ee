from pathlib import Path

import pytest

from esign.config import load_settings
from esign.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    assert settings.storage.blobs == tmp_path / "var" / "blobs"
    assert settings.database.url == f"sqlite:///{tmp_path / 'var' / 'esign.db'}"
    assert settings.app.default_locale == "vi"


def test_unknown_key_refuses_start_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurll = 'x'\n")
    with pytest.raises(ConfigError, match=r"config.toml: \[database\] urll is not a known setting"):
        load_settings(path, env={})


def test_unknown_table_refuses_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[databse\] is not a known table"):
        load_settings(write(tmp_path, "[databse]\nurl = 'x'\n"), env={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[app\] max_upload_mb must be a whole number"):
        load_settings(write(tmp_path, "[app]\nmax_upload_mb = 'lots'\n"), env={})


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurl = 'sqlite:///a.db'\n[app]\nhttps = false\n")
    settings = load_settings(path, env={"ESIGN_DATABASE_URL": "postgresql://h/db", "ESIGN_APP_HTTPS": "true",
                                        "ESIGN_SIGNING_BACKENDS": "softkey,agent"})
    assert settings.database.url == "postgresql://h/db"
    assert settings.app.https is True
    assert settings.signing.backends == ("softkey", "agent")


def test_secrets_are_read_only_from_the_named_variable(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[app]\nsecret_key_env = 'MY_KEY'\n"), env={})
    assert settings.secret(settings.app.secret_key_env, env={"MY_KEY": "s3cret"}) == "s3cret"
    assert settings.secret(settings.app.secret_key_env, env={}) is None


def test_production_refuses_development_keys_and_plain_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="https must be true"):
        load_settings(write(tmp_path, "[app]\nenvironment = 'production'\n"), env={})
    text = "[app]\nenvironment = 'production'\nhttps = true\n"
    with pytest.raises(ConfigError, match="development only"):
        load_settings(write(tmp_path, text), env={})


def test_server_processes_and_threads_are_at_least_one(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "[server]\nworkers = 3\nthreads = 2\n"), env={}).server.workers == 3
    assert load_settings(tmp_path / "config.toml", env={"ESIGN_SERVER_WORKERS": "1"}).server.workers == 1
    for table in ("[server]\nworkers = 0\n", "[server]\nthreads = 0\n"):
        with pytest.raises(ConfigError, match=r"\[server\] workers and threads must be at least 1"):
            load_settings(write(tmp_path, table), env={})
