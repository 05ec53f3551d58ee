"""The verifier's speed-ups change nothing: same parse, same match, same report, same audit."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, pem, x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic

from esign.verify import TrustStore, Verdict, core, fastparse, verify_many, verify_pdf
from esign.verify.core import Limits
from tests.verify import hostile
from tests.verify.chain import Chain

ORIGINAL_HEX = fastparse._ORIGINAL_HEX
ORIGINAL_MATCH = fastparse._ORIGINAL_MATCH


def _outcome(reader: Any, data: bytes) -> tuple[Any, ...]:
    stream = io.BytesIO(data)
    try:
        value = reader(stream)
    except Exception as e:  # noqa: BLE001 - the failure itself is compared
        return ("error", type(e).__name__, str(e))
    return ("ok", type(value).__name__, bytes(value.original_bytes), stream.tell())


HEX_BODY = st.lists(
    st.sampled_from(
        [
            b"0",
            b"7",
            b"a",
            b"F",
            b"e",
            b" ",
            b"\n",
            b"\r",
            b"\t",
            b"\f",
            b"\x00",
            b"g",
            b"%",
            b"<",
            b"(",
            b"\xff",
            b"\r\n",
        ]
    ),
    max_size=80,
).map(b"".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=HEX_BODY, close=st.booleans(), tail=st.binary(max_size=8))
def test_hex_reader_equals_pyhankos(body: bytes, close: bool, tail: bytes) -> None:
    data = b"<" + body + (b">" if close else b"") + tail
    assert _outcome(fastparse.read_hex_string_from_stream, data) == _outcome(ORIGINAL_HEX, data)


@pytest.mark.parametrize("digits", [0, 1, 511, 512, 513, 4095, 4097, 70_001])
def test_long_hex_strings_across_read_sizes(digits: int) -> None:
    body = (b"0123456789abcdef" * (digits // 16 + 1))[:digits]
    for data in (b"<" + body + b">", b"<" + body + b"\n>rest", b"<" + body[:-3] + b"%c\n>"):
        assert _outcome(fastparse.read_hex_string_from_stream, data) == _outcome(ORIGINAL_HEX, data)


def test_signature_contents_parse_identically(chain: Chain) -> None:
    data = chain.final
    holes = hostile.sig_holes(data)
    assert holes
    for start, end in holes:
        fast = generic.read_object(io.BytesIO(data[start:end]), None)  # type: ignore[arg-type]
        slow = ORIGINAL_HEX(io.BytesIO(data[start:end]))
        assert bytes(fast.original_bytes) == bytes(slow.original_bytes)
        assert len(fast.original_bytes) > 1000


def _certs(pki: Path) -> list[x509.Certificate]:
    out = []
    for path in sorted(pki.glob("*.cert.pem")):
        for _, _, der in pem.unarmor(path.read_bytes(), multiple=True):
            out.append(x509.Certificate.load(der))
    return out


def test_issuer_serial_match_equals_pyhankos(chain: Chain) -> None:
    certs = _certs(chain.pki)
    assert len(certs) >= 5
    matches = 0
    for a in certs:
        ids = cms.IssuerAndSerialNumber({"issuer": a.issuer, "serial_number": a.serial_number})
        for b in certs:
            fast = fastparse.match_issuer_serial(ids, b)
            assert fast == ORIGINAL_MATCH(ids, b)
            matches += fast
    assert matches >= len(certs)  # each certificate matches itself at least


def _comparable(report: Any) -> dict[str, Any]:
    d = report.to_dict()
    d.pop("duration_ms", None)
    return d


def test_reader_cache_and_fast_paths_give_identical_reports(
    chain: Chain, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [
        chain.final,
        *chain.revisions[1:-1],
        hostile.set_field(chain.final, "number", "999/QD-UBND"),
        hostile.add_annotation(chain.final),
        hostile.strip_signature_field(chain.final, "adviser_1"),
        hostile.shadow_replace(chain.final),
        hostile.incremental_saving(chain.final),
        hostile.tamper_signed_byte(chain.final),
        hostile.zeroed_contents(chain.final),
    ]
    moment = datetime.now(UTC).replace(second=0, microsecond=0)
    fast = [_comparable(verify_pdf(d, trust, validation_time=moment)) for d in cases]
    monkeypatch.setattr(core, "_Reader", core.PdfFileReader)
    fastparse.uninstall()
    try:
        plain = TrustStore(trust.roots)  # fresh caches too
        slow = [_comparable(verify_pdf(d, plain, validation_time=moment)) for d in cases]
    finally:
        fastparse.install()
    for a, b in zip(fast, slow, strict=True):
        assert a == b
    verdicts = [f["verdict"] for f in fast]
    assert verdicts[0] == "VALID" and verdicts[-1] == "INVALID", verdicts
    assert sum(v != "VALID" for v in verdicts) >= 5, verdicts


def test_verify_many_chunks_return_every_file_once(
    chain: Chain, trust: TrustStore, tmp_path: Path
) -> None:
    names = []
    for i in range(7):
        data = chain.final if i % 3 else hostile.appended_bytes(chain.final)
        (tmp_path / f"f{i}.pdf").write_bytes(data)
        names.append(f"f{i}.pdf")
    got = {
        p.name: r.verdict
        for p, r in verify_many(sorted(tmp_path.glob("*.pdf")), trust, jobs=2, chunk_size=3)
    }
    assert got == {
        n: Verdict.MODIFIED if i % 3 == 0 else Verdict.VALID for i, n in enumerate(names)
    }


def test_verify_many_survives_a_worker_that_dies(
    chain: Chain, trust: TrustStore, tmp_path: Path
) -> None:
    # the worker's memory limit is far too small for it to do anything: it dies, and the
    # files are verified again one by one in isolation; none is lost and none is VALID
    for i in range(3):
        (tmp_path / f"f{i}.pdf").write_bytes(chain.final)
    results = list(
        verify_many(
            sorted(tmp_path.glob("*.pdf")),
            trust,
            jobs=2,
            chunk_size=2,
            limits=Limits(memory_mb=1, timeout_s=20),
        )
    )
    assert sorted(p.name for p, _ in results) == ["f0.pdf", "f1.pdf", "f2.pdf"]
    assert all(r.verdict is Verdict.MALFORMED for _, r in results), [r.codes for _, r in results]


def _pyhanko_paths(data: bytes, revision: int) -> dict[Any, set[Any]]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    hist = PdfFileReader(io.BytesIO(data), strict=False).get_historical_resolver(revision)
    hist._load_reverse_xref_cache()
    return dict(hist._indirect_object_access_cache)


def test_paths_to_objects_equal_pyhankos_map(chain: Chain) -> None:
    cases = [chain.final, hostile.add_annotation(chain.final), hostile.shadow_replace(chain.final)]
    checked = 0
    for data in cases:
        reader = core._Reader(io.BytesIO(data), strict=False)
        for revision in range(reader.xrefs.total_revisions):
            expected = _pyhanko_paths(data, revision)
            hist = reader.get_historical_resolver(revision)
            assert isinstance(hist, core._Resolver)
            hist._load_reverse_xref_cache()
            assert hist._parents is not None  # the fast map, not the fallback
            for ref, paths in expected.items():
                assert hist._get_usages_of_ref(ref) == paths, (revision, ref)
                checked += 1
            unused = generic.Reference(10**6, 0)
            assert hist._get_usages_of_ref(unused) == set()
    assert checked > 500


def test_paths_fall_back_to_pyhanko_on_a_circular_page_tree() -> None:
    data = hostile._pdf_with(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
        ]
    )
    hist = core._Reader(io.BytesIO(data), strict=False).get_historical_resolver(0)
    with pytest.raises(Exception, match="[Cc]ircular"):
        hist._load_reverse_xref_cache()
    assert hist._parents is None
