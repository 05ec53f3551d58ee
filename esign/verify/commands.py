"""click commands `verify` and `audit`; the lead registers them on the `esign` group.

Exit codes of `verify` (the worst verdict over all files given):

    0 VALID, 2 UNSIGNED, 3 UNTRUSTED, 4 MODIFIED, 5 INVALID, 6 MALFORMED,
    1 usage or internal error (no trust roots, unreadable file, ...).

`audit` exits 0 when every file is VALID, else the code of the worst verdict.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from esign.errors import EsignError
from esign.verify.report import Report, Verdict

EXIT_CODES = {
    Verdict.VALID: 0,
    Verdict.UNSIGNED: 2,
    Verdict.UNTRUSTED: 3,
    Verdict.MODIFIED: 4,
    Verdict.INVALID: 5,
    Verdict.MALFORMED: 6,
}
EXIT_USAGE = 1


def exit_code(verdicts: Sequence[Verdict]) -> int:
    return EXIT_CODES[max(verdicts, default=Verdict.VALID)]


def _roots(
    ctx: click.Context, given: Sequence[str], default: Sequence[str | Path] | None
) -> list[Path]:
    if given:
        return [Path(p) for p in given]
    if default:
        return [Path(p) for p in default]
    # the esign CLI's state object carries the settings (pki.trust_roots); duck-typed on purpose
    state = ctx.find_root().obj
    try:
        return [Path(p) for p in state.settings.pki.trust_roots]
    except AttributeError:
        raise click.UsageError("No trust roots: pass --trust PEM") from None


def _trust(
    ctx: click.Context,
    given: Sequence[str],
    default: Sequence[str | Path] | None,
    fetch: bool,
    require_revocation: bool,
) -> Any:
    from esign.verify.core import TrustStore

    try:
        return TrustStore.from_pem_files(
            _roots(ctx, given, default), allow_fetching=fetch, require_revocation=require_revocation
        )
    except EsignError as e:
        click.echo(f"esign: {e}", err=True)
        sys.exit(EXIT_USAGE)


def _print_report(path: str, report: Report) -> None:
    click.echo(
        f"{path}: {report.verdict.name} ({len(report.signatures)} signature(s), "
        f"{report.revisions} revision(s), {report.duration_ms:.0f} ms)"
    )
    for s in report.signatures:
        who = s.signer or "?"
        when = s.timestamp_time or s.signing_time or "?"
        click.echo(
            f"  [{s.verdict.name}] {s.field} ({s.kind}) {who}, {when}, revocation {s.revocation}"
        )
    for f in report.reasons:
        where = f" [{f.field}]" if f.field else ""
        detail = f" ({f.detail})" if f.detail else ""
        click.echo(f"  ! {f.code}{where}: {f.message_en}{detail}")
    for f in report.info:
        where = f" [{f.field}]" if f.field else ""
        click.echo(f"  i {f.code}{where}: {f.message_en}")


def make_verify_command(trust_roots: Sequence[str | Path] | None = None) -> click.Command:
    @click.command("verify")
    @click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
    @click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
    @click.option(
        "--trust",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="PEM file of a trusted root (repeatable); default: the configured roots.",
    )
    @click.option("--fetch", is_flag=True, help="Fetch revocation data online (off by default).")
    @click.option(
        "--require-revocation",
        is_flag=True,
        help="Unknown revocation status makes a signature UNTRUSTED.",
    )
    @click.option(
        "--timeout", type=float, default=30.0, show_default=True, help="Seconds per file."
    )
    @click.pass_context
    def verify(
        ctx: click.Context,
        files: tuple[str, ...],
        as_json: bool,
        trust: tuple[str, ...],
        fetch: bool,
        require_revocation: bool,
        timeout: float,
    ) -> None:
        """Verify signed PDF files. Exit code: 0 VALID, 2 UNSIGNED, 3 UNTRUSTED, 4 MODIFIED,
        5 INVALID, 6 MALFORMED, 1 usage error."""
        from esign.verify.core import Limits
        from esign.verify.isolated import verify_isolated

        store = _trust(ctx, trust, trust_roots, fetch, require_revocation)
        limits = Limits(timeout_s=timeout)
        verdicts, out = [], []
        for name in files:
            try:
                data = Path(name).read_bytes()
            except OSError as e:
                click.echo(f"esign: cannot read {name}: {e.strerror}", err=True)
                sys.exit(EXIT_USAGE)
            report = verify_isolated(data, store, limits=limits)
            verdicts.append(report.verdict)
            if as_json:
                out.append({"path": name, **report.to_dict()})
            else:
                _print_report(name, report)
        if as_json:
            click.echo(json.dumps(out if len(out) != 1 else out[0], ensure_ascii=False, indent=2))
        sys.exit(exit_code(verdicts))

    return verify


def make_audit_command(trust_roots: Sequence[str | Path] | None = None) -> click.Command:
    @click.command("audit")
    @click.argument("folder", type=click.Path(exists=True), required=False)
    @click.option(
        "--all",
        "whole_database",
        is_flag=True,
        help="Verify every document in the database, with the workflow check.",
    )
    @click.option("--jobs", type=int, default=None, help="Worker processes (default: all cores).")
    @click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False),
        default="audit-out",
        show_default=True,
        help="Where audit.csv and audit.json go.",
    )
    @click.option(
        "--redis",
        "redis_url",
        default=None,
        help="Fan out over RQ workers, e.g. redis://127.0.0.1:6379.",
    )
    @click.option(
        "--trust",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="PEM file of a trusted root (repeatable); default: the configured roots.",
    )
    @click.option(
        "--timeout", type=float, default=30.0, show_default=True, help="Seconds per file."
    )
    @click.pass_context
    def audit(
        ctx: click.Context,
        folder: str | None,
        whole_database: bool,
        jobs: int | None,
        out_dir: str,
        redis_url: str | None,
        trust: tuple[str, ...],
        timeout: float,
    ) -> None:
        """Verify every PDF below FOLDER (or, with --all, every stored document) and
        write CSV and JSON summaries."""
        from esign.verify.audit import find_pdfs, run_audit
        from esign.verify.core import Limits

        if whole_database == bool(folder):
            raise click.UsageError("Give a FOLDER or --all")
        if whole_database:
            # the esign CLI's state object reaches the database; the verify layer does not
            audit_database = ctx.find_root().obj.audit_database
            with click.progressbar(length=0, label="Verifying", file=sys.stderr) as bar:

                def progress_all(done: int, total: int) -> None:
                    bar.length = total
                    bar.update(1)

                summary = audit_database(Path(out_dir), jobs=jobs, progress=progress_all)
            _print_summary(summary)
            return
        store = _trust(ctx, trust, trust_roots, False, False)
        try:
            files = find_pdfs(folder)
        except EsignError as e:
            click.echo(f"esign: {e}", err=True)
            sys.exit(EXIT_USAGE)
        with click.progressbar(length=len(files), label="Verifying", file=sys.stderr) as bar:
            last = [0]

            def progress(done: int, total: int) -> None:
                bar.update(done - last[0])
                last[0] = done

            try:
                summary = run_audit(
                    files,
                    store,
                    out_dir,
                    jobs=jobs,
                    redis_url=redis_url,
                    limits=Limits(timeout_s=timeout),
                    progress=progress,
                )
            except EsignError as e:
                click.echo(f"esign: {e}", err=True)
                sys.exit(EXIT_USAGE)
        _print_summary(summary)

    return audit


def _print_summary(summary: Any) -> None:
    click.echo(
        f"{summary.total} file(s) in {summary.seconds:.1f} s ({summary.files_per_second:.1f}/s)"
    )
    for name, count in summary.by_verdict.items():
        if count:
            click.echo(f"  {name}: {count}")
    click.echo(f"CSV: {summary.csv_path}\nJSON: {summary.json_path}")
    worst = [Verdict[n] for n, c in summary.by_verdict.items() if c]
    sys.exit(exit_code(worst))


verify_command = make_verify_command()
audit_command = make_audit_command()
