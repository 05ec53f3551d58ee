"""`esign remind` and `esign report` on a ward's database, and the reminder job on RQ (Redis on 127.0.0.1)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from esign.cli import main
from esign.models import SentReminder, Unit
from esign.services import reminders
from esign.services.context import Context
from tests.conftest import ROOT

from .conftest import open_memo
from .generate import generate_year

NOW = datetime(2026, 12, 31, 8, 0, tzinfo=UTC)


def write_config(ctx: Context, folder: Path) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'[app]\nenvironment = "test"\n[database]\nurl = "{ctx.settings.database.url}"\n'
        f'[workflows]\ndefinitions = "{ROOT / "workflows"}"\n'
        f'[signing]\nbackends = ["softkey"]\nseal_backend = "softkey"\n[pki]\ndev_dir = "{folder}"\n',
        encoding="utf-8")
    return path


@pytest.fixture
def config(sqlite_ward: Context, tmp_path: Path) -> Path:
    with sqlite_ward.db.session() as session:
        unit_id = session.scalar(select(Unit.id))
    generate_year(sqlite_ward, unit_id, 200, now=NOW, seed=3)
    sqlite_ward.clock = lambda: datetime(2020, 1, 6, 2, 0, tzinfo=UTC)  # a memo long overdue
    open_memo(sqlite_ward, "Về việc họp tổ dân phố")
    return write_config(sqlite_ward, tmp_path)


def test_esign_report_writes_text_csv_and_pdf(config: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--config", str(config), "report", "--unit", "bennghe", "--from", "01/01/2026", "--to", "31/12/2026"]
    text = runner.invoke(main, base)
    assert text.exit_code == 0, text.output
    assert "ỦY BAN NHÂN DÂN PHƯỜNG BẾN NGHÉ: 01/01/2026 – 31/12/2026" in text.output
    assert "received 200" in text.output
    csv_run = runner.invoke(main, [*base, "--format", "csv"])
    assert csv_run.exit_code == 0 and "Đã xử lý;" in csv_run.output
    pdf = tmp_path / "r.pdf"
    pdf_run = runner.invoke(main, [*base, "--format", "pdf", "-o", str(pdf)])
    assert pdf_run.exit_code == 0 and pdf.read_bytes().startswith(b"%PDF-")
    unknown = runner.invoke(main, ["--config", str(config), "report", "--unit", "nowhere", "--from", "01/01/2026",
                                   "--to", "02/01/2026"])
    assert unknown.exit_code == 2 and "nowhere" in unknown.output


def test_esign_remind_sends_each_reminder_once(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESIGN_SMTP_SINK_DIR", str(tmp_path / "mail"))
    runner = CliRunner()
    first = runner.invoke(main, ["--config", str(config), "remind"])
    assert first.exit_code == 0, first.output
    assert re.search(r"[1-9]\d* overdue", first.output)  # at least the memo of 2020
    second = runner.invoke(main, ["--config", str(config), "remind"])
    assert "0 due soon, 0 overdue, 0 notifications, 0 e-mails sent" in second.output
    assert len(list((tmp_path / "mail").glob("*.eml"))) >= 1


def test_the_reminder_job_runs_on_rq_and_the_scheduler_enqueues_it(config: Path, sqlite_ward: Context,
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    monkeypatch.setenv("ESIGN_SMTP_SINK_DIR", str(tmp_path / "mail"))
    connection = Redis.from_url("redis://127.0.0.1:6379")
    name = f"esign-reminders-test-{uuid.uuid4().hex[:8]}"
    settings = reminders.ReminderSettings(redis_url="redis://127.0.0.1:6379", queue=name, interval_seconds=60)
    queue = Queue(name, connection=connection)
    enqueued: list[str] = []
    try:
        scheduler = reminders.reminder_scheduler(settings, str(config))
        assert [job.name for job in scheduler.enqueue_jobs()] == ["esign-reminders"]
        assert queue.count == 1
        job = queue.jobs[0]
        enqueued.append(job.id)
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert job.refresh() is None and job.get_status() == "finished"
        assert " overdue" in job.return_value()
        with sqlite_ward.db.session() as session:
            assert session.scalars(select(SentReminder.kind)).all()
    finally:
        from rq.cron import get_cron_job_history_key

        # the cron job's history in Redis: leave no trace of this test's job
        connection.zrem(get_cron_job_history_key("esign-reminders"), *(queue.job_ids or ["-"]), *enqueued)
        queue.empty()
        queue.delete(delete_jobs=True)


def test_the_scheduler_refuses_an_unreachable_queue() -> None:
    from esign.errors import ConfigError

    with pytest.raises(ConfigError, match="Cannot reach the job queue"):
        reminders.reminder_scheduler(reminders.ReminderSettings(redis_url="redis://127.0.0.1:1"))
