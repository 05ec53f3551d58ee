"""Auditor verification of signed PDFs (pure library: pyHanko, never Flask or the ORM).

    report = verify_pdf(data, TrustStore.from_pem_files(["keys/dev/root.cert.pem"]))
    report.verdict            # Verdict.VALID ... Verdict.MALFORMED, or UNSIGNED
    report.to_dict()          # JSON-safe

verify_isolated runs one verification in a child process with time and memory
limits; verify_many runs many over a process pool; esign.verify.audit writes
CSV and JSON summaries; esign.verify.commands holds the `verify` and `audit`
click commands.
"""

from esign.verify.core import Expectation, ExpectedSignature, Limits, TrustStore, verify_pdf
from esign.verify.isolated import verify_isolated, verify_many
from esign.verify.report import RULES, Change, Finding, Report, SignatureReport, Verdict

__all__ = [
    "RULES",
    "Change",
    "Expectation",
    "ExpectedSignature",
    "Finding",
    "Limits",
    "Report",
    "SignatureReport",
    "TrustStore",
    "Verdict",
    "verify_isolated",
    "verify_many",
    "verify_pdf",
]
