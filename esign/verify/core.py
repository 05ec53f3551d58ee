"""verify_pdf: the auditor's verdict on one PDF (pure library: pyHanko, no Flask, no ORM).

pyHanko checks each signature; its plain bottom line misses whole classes of
attack (bytes after the last revision, a signature with an unknown SubFilter
silently skipped, signatures stripped from the form, a field blanked to reveal
hidden content, annotations after signing). This module runs pyHanko's pieces
and adds those checks, each with a stable rule code (see ``report.RULES``).

Work is shared: the document's revisions are analysed once, pair by pair
(pyHanko re-reads every later revision for every signature), and certificate
path outcomes and certificate/OCSP/CRL signature checks are cached in the
TrustStore across calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import crl, ocsp, pem, x509
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.decode_limits import DecodeLimits
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader, RawPdfPath
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, DiffResult, ModificationLevel
from pyhanko.sign.diff_analysis.policy_api import SuspiciousModification
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm, enumerate_sig_fields
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator, SignatureValidator

from esign.errors import VerificationError
from esign.verify import fastparse
from esign.verify.report import (
    Change,
    Finding,
    Report,
    SignatureReport,
    Verdict,
    decide,
    split_findings,
)

fastparse.install()  # pyHanko's hex-string and issuer/serial hot spots, same behaviour

SIG_SUBFILTERS = {"/adbe.pkcs7.detached", "/ETSI.CAdES.detached"}
TS_SUBFILTERS = {"/ETSI.RFC3161"}
STRONG_DIGESTS = {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"}
WHITESPACE = b" \t\r\n\f\x00"
MAX_WALK = 10_000  # objects visited per tree walk (pages, fields); a hostile file can loop


@dataclass(frozen=True)
class Limits:
    """Resource limits of one verification (picklable: it travels to worker processes)."""

    max_bytes: int = 64 * 1024 * 1024
    max_revisions: int = 200
    max_signatures: int = 100
    #: pyHanko's defaults are meant for untrusted input (256 MiB a stream, ratio 1100)
    decode_limits: DecodeLimits = field(default_factory=DecodeLimits)
    timeout_s: float = 30.0
    memory_mb: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ExpectedSignature:
    """One signature the workflow recorded, in signing order."""

    field: str
    fingerprint: str  # sha256 of the signer certificate, hex
    role: str


@dataclass(frozen=True)
class Expectation:
    """What the database says about a document esign issued (pure data)."""

    signatures: tuple[ExpectedSignature, ...]
    #: sha256 (hex) of every stored revision, oldest first; revision k is a prefix of k+1
    revision_sha256: tuple[str, ...] = ()


# --- trust --------------------------------------------------------------------------------


class _CachingSignatureValidator(SignatureValidator):
    """Remembers which (key, algorithm, data, signature) checks passed: a pure function."""

    def __init__(self, limit: int = 20_000) -> None:
        self._inner = DefaultSignatureValidator()
        self._ok: dict[bytes, None] = {}
        self._limit = limit
        self._lock = threading.Lock()
        self.hits = 0

    def validate_signature(
        self, signature, signed_data, public_key_info, signature_algorithm, context=None
    ):  # type: ignore[no-untyped-def,override]
        key = hashlib.sha256(
            b"|".join(
                (
                    signature,
                    hashlib.sha256(signed_data).digest(),
                    public_key_info.dump(),
                    signature_algorithm.dump(),
                    repr(context).encode(),
                )
            )
        ).digest()
        with self._lock:
            if key in self._ok:
                self.hits += 1
                return
        if context is None:
            self._inner.validate_signature(
                signature, signed_data, public_key_info, signature_algorithm
            )
        else:
            self._inner.validate_signature(
                signature, signed_data, public_key_info, signature_algorithm, context
            )
        with self._lock:
            if len(self._ok) >= self._limit:
                self._ok.clear()
            self._ok[key] = None


@dataclass(frozen=True)
class PathOutcome:
    """The result of validating a signer certificate against the trust roots at one moment."""

    trusted: bool
    path: tuple[str, ...] = ()
    problem: str | None = None  # a rule code
    detail: str = ""
    revocation: str = "unknown"
    revoked_at: datetime | None = None


_REQUIRE_REVINFO = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    )
)


class TrustStore:
    """The configured trust roots (never the operating system's store) and their caches.

    One TrustStore should live as long as the process: it caches path outcomes
    (exact key: certificate, intermediates, revocation data, moment) and every
    certificate, OCSP and CRL signature it has checked.
    """

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        *,
        allow_fetching: bool = False,
        require_revocation: bool = False,
        key_usage: frozenset[str] = frozenset({"non_repudiation", "digital_signature"}),
    ) -> None:
        if not roots:
            raise VerificationError("No trust roots are configured; nothing could be trusted")
        self.roots = tuple(roots)
        self.allow_fetching = allow_fetching
        self.require_revocation = require_revocation
        self.key_usage = key_usage
        self._init_caches()

    def _init_caches(self) -> None:
        self.sig_validator = _CachingSignatureValidator()
        self._paths: dict[tuple[Any, ...], PathOutcome] = {}
        self._lock = threading.Lock()
        self.path_hits = 0

    def __getstate__(self) -> dict[str, Any]:
        return {
            "roots": [c.dump() for c in self.roots],
            "allow_fetching": self.allow_fetching,
            "require_revocation": self.require_revocation,
            "key_usage": self.key_usage,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.roots = tuple(x509.Certificate.load(d) for d in state["roots"])
        self.allow_fetching = state["allow_fetching"]
        self.require_revocation = state["require_revocation"]
        self.key_usage = state["key_usage"]
        self._init_caches()

    @classmethod
    def from_pem_files(cls, paths: Iterable[str | Path], **options: Any) -> TrustStore:
        """Load the trust roots from PEM (or DER) files; every certificate of a bundle counts."""
        roots: list[x509.Certificate] = []
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                raise VerificationError(
                    "Cannot read trust root file %(path)s", path=str(path)
                ) from e
            try:
                if pem.detect(data):
                    roots.extend(
                        x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)
                    )
                else:
                    roots.append(x509.Certificate.load(data))
            except ValueError as e:
                raise VerificationError(
                    "Trust root file %(path)s does not hold certificates", path=str(path)
                ) from e
        return cls(roots, **options)

    def context(
        self, *, moment: datetime | None, other_certs=(), crls=(), ocsps=(), require=False
    ) -> ValidationContext:  # type: ignore[no-untyped-def]
        kwargs: dict[str, Any] = {
            "trust_roots": list(self.roots),
            "other_certs": list(other_certs),
            "crls": list(crls),
            "ocsps": list(ocsps),
            "signature_validator": self.sig_validator,
        }
        if self.allow_fetching:
            kwargs["allow_fetching"] = True
        else:
            kwargs["moment"] = moment
        if require:
            kwargs["revinfo_policy"] = _REQUIRE_REVINFO
        else:
            kwargs["revocation_mode"] = "soft-fail"
        return ValidationContext(**kwargs)

    async def validate_signer(
        self, cert: x509.Certificate, revinfo: _Revinfo, moment: datetime
    ) -> PathOutcome:
        key = (cert.sha256, revinfo.digest, moment.isoformat(), self.allow_fetching)
        with self._lock:
            hit = self._paths.get(key)
        if hit is not None:
            self.path_hits += 1
            return hit
        outcome = await self._validate(cert, revinfo, moment)
        with self._lock:
            if len(self._paths) > 50_000:
                self._paths.clear()
            self._paths[key] = outcome
        return outcome

    async def _validate(
        self, cert: x509.Certificate, revinfo: _Revinfo, moment: datetime
    ) -> PathOutcome:
        async def attempt(require: bool) -> Any:
            vc = self.context(
                moment=moment,
                other_certs=revinfo.certs,
                crls=revinfo.crls,
                ocsps=revinfo.ocsps,
                require=require,
            )
            validator = CertificateValidator(
                cert, intermediate_certs=revinfo.certs, validation_context=vc
            )
            return await validator.async_validate_usage(set(self.key_usage))

        def names(path: Any) -> tuple[str, ...]:
            out = []
            for c in path:
                subject = getattr(c, "subject", None)
                if subject is not None:
                    out.append(subject.human_friendly)
            return tuple(out)

        try:
            path = await attempt(require=True)
            return PathOutcome(True, names(path), revocation="good")
        except RevokedError as e:
            return PathOutcome(
                False,
                problem="signature.revoked",
                detail=str(e),
                revocation="revoked",
                revoked_at=e.revocation_dt,
            )
        except InsufficientRevinfoError:
            pass
        except PathBuildingError as e:
            return PathOutcome(False, problem="signature.untrusted", detail=str(e))
        except (ExpiredError, NotYetValidError) as e:
            return PathOutcome(False, problem="signature.cert_expired", detail=str(e))
        except PathValidationError as e:
            # e.g. revocation data that is present but stale or unusable: decide without it
            if "revo" not in str(e).lower():
                return PathOutcome(False, problem="signature.untrusted", detail=str(e))
        except ValidationError as e:  # key usage, self-signed and other certificate problems
            return PathOutcome(False, problem=_certificate_problem(e), detail=str(e))
        # revocation status could not be established: soft-fail for the trust decision
        try:
            path = await attempt(require=False)
        except RevokedError as e:
            return PathOutcome(
                False,
                problem="signature.revoked",
                detail=str(e),
                revocation="revoked",
                revoked_at=e.revocation_dt,
            )
        except PathBuildingError as e:
            return PathOutcome(False, problem="signature.untrusted", detail=str(e))
        except (ExpiredError, NotYetValidError) as e:
            return PathOutcome(False, problem="signature.cert_expired", detail=str(e))
        except PathValidationError as e:
            return PathOutcome(False, problem="signature.untrusted", detail=str(e))
        except ValidationError as e:
            return PathOutcome(False, problem=_certificate_problem(e), detail=str(e))
        return PathOutcome(True, names(path), revocation="unknown")


def _certificate_problem(e: Exception) -> str:
    return "signature.key_usage" if "usage" in str(e).lower() else "signature.untrusted"


@dataclass
class _Revinfo:
    certs: list[x509.Certificate]
    crls: list[crl.CertificateList]
    ocsps: list[ocsp.OCSPResponse]
    digest: bytes = b""

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        for group in (self.certs, self.crls, self.ocsps):
            for item in sorted(hashlib.sha256(i.dump()).digest() for i in group):
                h.update(item)
            h.update(b"|")
        self.digest = h.digest()


# --- the analysis -------------------------------------------------------------------------


_GRAPH_DEPTH_LIMIT = 200  # deeper object graphs take pyHanko's own (recursive) path map


class _TooDeep(Exception):
    pass


class _Resolver(HistoricalResolver):
    """A historical revision that maps the paths to an object only when asked.

    pyHanko's difference analysis asks the older revision of each pair for
    every path from the trailer to the few objects the newer one overwrote
    (the form, a field, its appearance). pyHanko enumerates every path to
    every object of the revision for that (each font and image once per page
    that uses it): about half of verifying a multi-signature memo. This
    resolver builds the revision's object graph once, and for each object
    asked about walks only the objects that can reach it, with pyHanko's
    rules (no /Parent, the canonical page-tree path, the structure tree
    entered only from the root); every other branch contributes no path to it,
    so the answer is the same set of paths. Anything unusual while building
    the graph (an unreadable object, nesting deeper than
    ``_GRAPH_DEPTH_LIMIT``) falls back to pyHanko's own map, errors included.
    """

    def __init__(self, reader: PdfFileReader, revision: int) -> None:
        super().__init__(reader, revision)
        self._parents: dict[Any, set[Any]] | None = None
        self._page_tree: dict[Any, Any] = {}
        self._struct_tree: set[Any] = set()
        self._paths: dict[Any, set[RawPdfPath]] = {}

    def _load_reverse_xref_cache(self) -> None:
        if self._indirect_object_access_cache is not None or self._parents is not None:
            return
        try:
            self._page_tree, self._struct_tree = self._special_trees()
            self._parents = self._object_graph()
        except Exception:  # noqa: BLE001 - pyHanko's own map decides, and raises what it raises
            self._parents = None
            super()._load_reverse_xref_cache()

    def _get_usages_of_ref(self, ref: generic.Reference) -> set[RawPdfPath]:
        if self._parents is None:
            return super()._get_usages_of_ref(ref)
        try:
            return self._paths[ref]
        except KeyError:
            pass
        # one walk serves the objects the next revision overwrites: what the analysis asks about
        # and the form's fields, widgets and appearances (the form rules ask about those)
        batch = {ref} | self._form_refs()
        if self.revision + 1 < self.reader.xrefs.total_revisions:
            batch |= set(self.reader.xrefs.explicit_refs_in_revision(self.revision + 1))
        batch -= self._paths.keys()
        self._paths.update(self._paths_to(batch))
        return self._paths[ref]

    def _form_refs(self, limit: int = 5_000) -> set[Any]:
        """Objects up to four references below the form's /Fields (fields, kids, appearances)."""
        out: set[Any] = set()
        try:
            fields = self.root["/AcroForm"].raw_get("/Fields")
            level = set(_references_in(fields))
            if isinstance(fields, generic.IndirectObject):
                level.add(fields.reference)
            for _ in range(4):
                level -= out
                out |= level
                if not level or len(out) > limit:
                    break
                nxt: set[Any] = set()
                for ref in level:
                    nxt.update(_references_in(self(ref)))
                level = nxt
        except Exception:  # noqa: BLE001 - only a hint of what to map in one walk
            return out
        return out

    def _special_trees(self) -> tuple[dict[Any, Any], set[Any]]:
        """Page-tree nodes with their canonical path; structure elements (as pyHanko)."""
        pages_ref = self.root.raw_get("/Pages")
        pages_path = misc.ConsList.sing("/Root").cons("/Pages")
        page_tree: dict[Any, Any] = {}
        if isinstance(pages_ref, generic.IndirectObject):
            page_tree[pages_ref.reference] = pages_path
        stack = [(pages_ref.get_object(), pages_path, 0)]
        while stack:
            node, path, depth = stack.pop()
            if depth > _GRAPH_DEPTH_LIMIT:
                raise _TooDeep()
            found = []
            for ix, kid in enumerate(node["/Kids"]):
                kid_path = path.cons("/Kids").cons(ix)
                if isinstance(kid, generic.IndirectObject):
                    if kid.reference in page_tree:
                        raise _TooDeep()  # pyHanko's own map reports the circular page tree
                    page_tree[kid.reference] = kid_path
                kid_obj = kid.get_object()
                if kid_obj.get("/Type", None) == "/Pages":
                    found.append((kid_obj, kid_path, depth + 1))
            stack.extend(reversed(found))
        struct_tree: set[Any] = set()
        try:
            root = self.root.raw_get("/StructTreeRoot").get_object()
        except KeyError:
            return page_tree, struct_tree
        todo = [(root, 0)]
        while todo:
            elem, depth = todo.pop()
            if depth > _GRAPH_DEPTH_LIMIT:
                raise _TooDeep()
            try:
                children = elem["/K"]
            except KeyError:
                continue
            if not isinstance(children, generic.ArrayObject):
                children = (children,)
            for child in children:
                child_ref = None
                if isinstance(child, generic.IndirectObject):
                    child_ref = child.reference
                    child = child.get_object()
                if not isinstance(child, generic.DictionaryObject):
                    continue
                try:
                    if child["/Type"] != "/StructElem":
                        continue
                except KeyError:
                    pass
                if child_ref is not None:
                    if child_ref in struct_tree:
                        raise _TooDeep()  # circular structure tree: pyHanko's map reports it
                    struct_tree.add(child_ref)
                todo.append((child, depth + 1))
        return page_tree, struct_tree

    def _object_graph(self) -> dict[Any, set[Any]]:
        """Every object reachable from the trailer (any key) -> the objects that refer to it.

        The references inside one stored version of an object are the same in
        every revision that sees that version: they are kept on the reader.
        """
        reader = self.reader
        edges: dict[tuple[Any, ...], tuple[Any, ...]] = reader._edges  # type: ignore[attr-defined]
        xrefs = reader.xrefs
        parents: dict[Any, set[Any]] = {}
        seen: set[Any] = set()
        todo: list[Any] = [None]  # None: the trailer
        while todo:
            owner = todo.pop()
            if owner is None:
                kids = _references_in(self.trailer_view)
            else:
                marker = xrefs.get_historical_ref(owner, self.revision)
                key = (owner.idnum, owner.generation, marker)
                kids = edges.get(key)  # type: ignore[assignment]
                if kids is None:
                    kids = edges[key] = _references_in(self(owner))
            for ref in kids:
                parents.setdefault(ref, set()).add(owner)
                if ref not in seen:
                    seen.add(ref)
                    todo.append(ref)
        return parents

    def _paths_to(self, targets: set[Any]) -> dict[Any, set[RawPdfPath]]:
        """pyHanko's walk from the trailer, restricted to the objects that can reach a target."""
        assert self._parents is not None
        found: dict[Any, set[Any]] = {t: set() for t in targets}
        ancestors: set[Any] = set()
        todo = [t for t in targets if t in self._parents]
        while todo:
            for parent in self._parents.get(todo.pop(), ()):
                if parent is not None and parent not in ancestors:
                    ancestors.add(parent)
                    todo.append(parent)
        page_tree, struct_tree = self._page_tree, self._struct_tree
        root_only = misc.ConsList.sing("/Root")
        stack: list[tuple[Any, Any, Any, bool]] = [
            (self.trailer_view, misc.ConsList.empty(), misc.ConsList.empty(), False)
        ]
        while stack:
            obj, cur_path, seen_in_path, in_struct = stack.pop()
            if isinstance(obj, generic.IndirectObject):
                ref = obj.reference
                if ref in seen_in_path:
                    continue
                paths = found.get(ref)
                if paths is not None:
                    paths.add(cur_path)
                if ref not in ancestors:
                    continue  # no target below it
                seen_in_path = seen_in_path.cons(ref)
                if page_tree.get(ref, cur_path) != cur_path:
                    continue
                if not in_struct and ref in struct_tree:
                    continue
                obj = self(ref)
            if isinstance(obj, generic.DictionaryObject):
                for k, v in obj.items():
                    if k == "/Parent" or (in_struct and k == "/P"):
                        continue
                    stack.append(
                        (
                            v,
                            cur_path.cons(k),
                            seen_in_path,
                            in_struct
                            or (
                                cur_path.head == "/StructTreeRoot"
                                and k == "/K"
                                and cur_path.tail == root_only
                            ),
                        )
                    )
            elif isinstance(obj, generic.ArrayObject):
                for ix, v in enumerate(obj):
                    stack.append((v, cur_path.cons(ix), seen_in_path, in_struct))
        return {t: {RawPdfPath(*reversed(list(p))) for p in ps} for t, ps in found.items()}


def _references_in(obj: Any) -> tuple[Any, ...]:
    """The indirect references in one object's direct content (nested dictionaries, arrays)."""
    out = []
    inner = [(obj, 0)]
    while inner:
        item, depth = inner.pop()
        if depth > _GRAPH_DEPTH_LIMIT:
            raise _TooDeep()
        if isinstance(item, generic.IndirectObject):
            out.append(item.reference)
        elif isinstance(item, generic.DictionaryObject):
            inner.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, generic.ArrayObject):
            inner.extend((v, depth + 1) for v in item)
    return tuple(out)


class _Reader(PdfFileReader):
    """A PdfFileReader that parses each stored object version once per document.

    pyHanko caches the current version of every object, but re-reads an
    object's older version from the file for every historical revision that
    looks at it (the form, the catalogue and the signature fields change in
    every revision, so a chain of n signatures re-parsed them about n² times).
    The bytes at one position of the file are one object whichever revision
    asks; historical resolvers copy ("subsume") what they get, as they do for
    the shared current versions, so sharing the parse changes nothing else.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_position: dict[tuple[Any, ...], Any] = {}
        self._edges: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # for _Resolver

    def get_object(
        self,
        ref,
        revision=None,
        never_decrypt=False,
        transparent_decrypt=True,
        as_metadata_stream=False,
    ):  # type: ignore[no-untyped-def]
        if revision is None or self.encrypted:
            return super().get_object(
                ref, revision, never_decrypt, transparent_decrypt, as_metadata_stream
            )
        marker = self.xrefs.get_historical_ref(ref, revision)
        if marker is None:  # pyHanko's warning and null object, uncached
            return super().get_object(
                ref, revision, never_decrypt, transparent_decrypt, as_metadata_stream
            )
        key = (ref.idnum, ref.generation, marker, as_metadata_stream)
        obj = self._by_position.get(key)
        if obj is None:
            obj = super().get_object(
                ref, revision, never_decrypt, transparent_decrypt, as_metadata_stream
            )
            self._by_position[key] = obj
        return obj

    def get_historical_resolver(self, revision: int) -> HistoricalResolver:
        cache = self._historical_resolver_cache
        if revision not in cache:
            cache[revision] = _Resolver(self, revision)
        return cache[revision]


class _Malformed(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class _Sig:
    field: str
    ref: Any  # reference of the signature dictionary
    emb: EmbeddedPdfSignature | None
    kind: str
    subfilter: str | None
    revision: int | None
    error: str | None = None


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _name(value: Any) -> str | None:
    return str(value) if value is not None else None


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise VerificationError(
        "verify_pdf cannot run inside a running event loop; use a worker thread"
    )


def verify_pdf(
    data: bytes,
    trust: TrustStore,
    *,
    expected: Expectation | None = None,
    limits: Limits = DEFAULT_LIMITS,
    validation_time: datetime | None = None,
) -> Report:
    """Verify every signature and every revision of ``data``; never raises for a bad PDF.

    ``validation_time`` defaults to now, truncated to the minute (so that path
    outcomes cached in ``trust`` serve every document checked in that minute).
    """
    started = time.perf_counter()
    if validation_time is None:
        validation_time = datetime.now(UTC).replace(second=0, microsecond=0)
    elif validation_time.tzinfo is None:
        raise VerificationError("The validation time must carry a time zone")
    sha = hashlib.sha256(data).hexdigest()
    sigs: tuple[SignatureReport, ...] = ()
    revisions = 0
    try:
        findings, sigs, revisions = _run(
            _Verifier(data, trust, expected, limits, validation_time).run()
        )
    except _Malformed as e:
        findings = [Finding.of(e.code, detail=e.detail)]
    except RecursionError:
        findings = [Finding.of("pdf.too_deep")]
    except misc.PdfDecodeLimitError as e:
        findings = [Finding.of("pdf.decode_limit", detail=str(e)[:300])]
    except MemoryError:
        findings = [Finding.of("verify.memory")]
    except VerificationError:
        raise
    except (
        misc.PdfError,
        misc.PdfReadError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        AssertionError,
        OSError,
        EOFError,
    ) as e:
        # pyHanko and asn1crypto raise these on damaged input
        findings = [Finding.of("pdf.unreadable", detail=f"{type(e).__name__}: {str(e)[:300]}")]
    except Exception as e:  # noqa: BLE001 - an internal error is never VALID
        findings = [
            Finding.of("verify.internal_error", detail=f"{type(e).__name__}: {str(e)[:300]}")
        ]
    reasons, info = split_findings(_dedupe(findings))
    return Report(
        verdict=decide(reasons, signed=bool(sigs)),
        reasons=reasons,
        info=info,
        signatures=sigs,
        revisions=revisions,
        file_sha256=sha,
        size=len(data),
        duration_ms=(time.perf_counter() - started) * 1000,
        validation_time=validation_time.isoformat(),
    )


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, str | None, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.field, f.detail)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


class _Verifier:
    def __init__(
        self,
        data: bytes,
        trust: TrustStore,
        expected: Expectation | None,
        limits: Limits,
        moment: datetime,
    ) -> None:
        self.data = data
        self.trust = trust
        self.expected = expected
        self.limits = limits
        self.moment = moment
        self.findings: list[Finding] = []
        self.levels: dict[int, str] = {}

    def add(self, code: str, field: str | None = None, detail: str = "") -> None:
        self.findings.append(Finding.of(code, field, detail))

    # -- the steps ---------------------------------------------------------------------

    async def run(self) -> tuple[list[Finding], tuple[SignatureReport, ...], int]:
        data = self.data
        if len(data) > self.limits.max_bytes:
            raise _Malformed("pdf.too_large", f"{len(data)} bytes > {self.limits.max_bytes}")
        if b"%PDF-" not in data[:1024]:
            raise _Malformed("pdf.not_pdf")
        reader = _Reader(io.BytesIO(data), strict=False, decode_limits=self.limits.decode_limits)
        if reader.encrypted:
            raise _Malformed("pdf.encrypted")
        self.reader = reader
        total = reader.xrefs.total_revisions
        if total > self.limits.max_revisions:
            raise _Malformed("pdf.too_many_revisions", f"{total} revisions")
        _ = reader.root["/Pages"]  # a PDF without a page tree is not a document
        self.total = total
        self.ends = self._revision_ends()
        self._check_tail()

        sigs = self._collect_signatures()
        if not sigs:
            self.add("document.unsigned")
            self._check_stripped(sigs)
            return self.findings, (), total

        self._check_stripped(sigs)
        changes = self._analyse_revisions(sigs)
        reports = []
        revinfo = self._revinfo(reader)
        for sig in sigs:
            reports.append(await self._signature(sig, revinfo, changes))
        self._check_coverage_of_file(sigs, changes)
        if self.expected is not None:
            self._check_expectation(sigs, reports)
        return self.findings, tuple(reports), total

    def _revision_ends(self) -> list[int]:
        """Offset just past each revision's %%EOF line (what esign stores as revision k)."""
        ends = []
        xrefs = self.reader.xrefs
        for r in range(self.total):
            start = xrefs.get_xref_container_info(r).end_location
            eof = self.data.find(b"%%EOF", start)
            if eof < 0:
                raise _Malformed("pdf.unreadable", f"revision {r} has no end-of-file marker")
            end = eof + 5
            if self.data[end : end + 2] == b"\r\n":
                end += 2
            elif self.data[end : end + 1] in (b"\n", b"\r"):
                end += 1
            ends.append(end)
        return ends

    def _check_tail(self) -> None:
        """Nothing but whitespace may follow the last revision."""
        tail = self.data[self.ends[-1] :]
        if tail.strip(WHITESPACE):
            self.add("file.trailing_bytes", detail=f"{len(tail)} bytes after the last revision")

    def _collect_signatures(self) -> list[_Sig]:
        out: list[_Sig] = []
        reader = self.reader
        for name, sig_value, field_ref in enumerate_sig_fields(reader, filled_status=True):
            if len(out) >= self.limits.max_signatures:
                raise _Malformed("pdf.unreadable", "too many signatures")
            # a plain str: pyHanko's string object keeps a reference into the reader, and a report
            # carrying it pickled the whole parsed PDF (530 KB, 36 ms) back from each audit worker
            fq_name = str(name)
            ref = None
            try:
                ref = field_ref.get_object().raw_get("/V")
                sig_obj = sig_value.get_object() if sig_value is not None else None
            except Exception as e:  # noqa: BLE001 - any damage is a finding on this field
                out.append(
                    _Sig(fq_name, ref, None, "unknown", None, None, f"{type(e).__name__}: {e}")
                )
                continue
            subfilter = (
                _name(sig_obj.get("/SubFilter"))
                if isinstance(sig_obj, generic.DictionaryObject)
                else None
            )
            sig_type = (
                _name(sig_obj.get("/Type"))
                if isinstance(sig_obj, generic.DictionaryObject)
                else None
            )
            kind = "timestamp" if sig_type == "/DocTimeStamp" else "approval"
            revision = None
            if isinstance(ref, generic.IndirectObject):
                try:
                    revision = reader.xrefs.get_last_change(ref.reference)
                except Exception:  # noqa: BLE001
                    revision = None
            try:
                emb = EmbeddedPdfSignature(reader, field_ref, fq_name)
            except Exception as e:  # noqa: BLE001 - forged /Contents, null /ByteRange...
                out.append(
                    _Sig(
                        fq_name,
                        ref,
                        None,
                        "unknown",
                        subfilter,
                        revision,
                        f"{type(e).__name__}: {str(e)[:200]}",
                    )
                )
                continue
            if kind == "approval" and _is_certification(reader, ref):
                kind = "certification"
            out.append(_Sig(fq_name, ref, emb, kind, subfilter, emb.signed_revision))
        out.sort(key=lambda s: (s.revision if s.revision is not None else -1, s.field))
        return out

    def _check_stripped(self, sigs: list[_Sig]) -> None:
        """Signature dictionaries in the bytes that no field of the document refers to."""
        current = {s.ref.reference.idnum for s in sigs if isinstance(s.ref, generic.IndirectObject)}
        for m in re.finditer(rb"/ByteRange\s*\[", self.data):
            head = self.data.rfind(b" obj", 0, m.start())
            obj = re.search(rb"(\d+)\s+(\d+)\s+obj\s*$", self.data[max(0, head - 30) : head + 4])
            idnum = int(obj.group(1)) if obj else None
            if idnum not in current:
                self.add(
                    "signature.stripped",
                    detail=f"signature dictionary at byte {m.start()}"
                    + (f" (object {idnum})" if idnum is not None else ""),
                )
        # a field that was signed in an earlier revision and is no longer
        names_now = {s.field for s in sigs}
        if sigs or self.total > 1:
            for r in range(self.total - 1):
                try:
                    hist = self.reader.get_historical_resolver(r)
                    earlier = {str(n) for n, v, _ in enumerate_sig_fields(hist, filled_status=True)}
                except Exception:  # noqa: BLE001, S112 - an unreadable old revision is judged elsewhere
                    continue
                for name in sorted(earlier - names_now):
                    self.add(
                        "signature.stripped",
                        field=name,
                        detail=f"signed field present in revision {r} is gone",
                    )

    def _analyse_revisions(self, sigs: list[_Sig]) -> dict[int, Change]:
        """Analyse each revision after the first signature once, against the one before it."""
        reader = self.reader
        by_rev: dict[int, list[_Sig]] = {}
        for s in sigs:
            if s.revision is not None:
                by_rev.setdefault(s.revision, []).append(s)
        signed_revs = sorted(by_rev)
        if not signed_revs:
            return {}
        first = signed_revs[0]
        cert = next((s for s in sigs if s.kind == "certification"), None)
        docmdp: MDPPerm | None = cert.emb.docmdp_level if cert and cert.emb else None
        if cert is not None and cert.revision != first:
            self.add("certification.not_first", cert.field)
        locks: list[tuple[int, str, FieldMDPSpec]] = []
        for s in sigs:
            if s.emb is not None and s.revision is not None:
                try:
                    spec = s.emb.fieldmdp
                except Exception:  # noqa: BLE001
                    spec = None
                if spec is not None:
                    locks.append((s.revision, s.field, spec))
        changes: dict[int, Change] = {}
        prev = reader.get_historical_resolver(first)
        prev_fields = _field_values(prev)
        prev_annots = _annotations(prev)
        for r in range(first + 1, self.total):
            new = reader.get_historical_resolver(r)
            signed_by = ", ".join(s.field for s in by_rev.get(r, ())) or None
            note = ""
            try:
                # pyHanko's changed_form_fields is not reliable pair by pair (it re-reports
                # appearance streams of earlier revisions): only the level is used here, and
                # field locks are enforced below with pyHanko's own per-signature review
                result = DEFAULT_DIFF_POLICY.apply(
                    old=prev,
                    new=new,
                    field_mdp_spec=None,
                    doc_mdp=docmdp
                    if cert is not None and cert.revision is not None and cert.revision < r
                    else None,
                )
                assert isinstance(result, DiffResult)
                level = result.modification_level
            except SuspiciousModification as e:
                level, note = None, str(e).splitlines()[0][:300]
            new_fields = _field_values(new)
            new_annots = _annotations(new)
            added_fields = sorted(set(new_fields) - set(prev_fields))
            altered = sorted(
                n
                for n, v in prev_fields.items()
                if v[1] not in (None, "") and n in new_fields and new_fields[n][1] != v[1]
            )
            removed = sorted(n for n, v in prev_fields.items() if n not in new_fields)
            added_annots = sorted(
                f"page {page + 1}: {subtype}"
                for (page, ref), subtype in new_annots.items()
                if (page, ref) not in prev_annots and subtype != "/Widget"
            )
            level_name = "FORBIDDEN" if level is None else level.name
            self.levels[r] = level_name
            changes[r] = Change(
                r, level_name, signed_by, tuple(altered + removed), tuple(added_annots), note
            )
            # the rules
            if level is None:
                self.add(
                    "docmdp.violation" if cert is not None else "revision.forbidden_change",
                    detail=f"revision {r}: {note}",
                )
            elif (
                docmdp is not None
                and cert is not None
                and cert.revision is not None
                and cert.revision < r
            ):
                if level == ModificationLevel.OTHER or level.value > docmdp.value:
                    self.add(
                        "docmdp.violation",
                        cert.field,
                        f"revision {r}: {level.name} exceeds DocMDP P={docmdp.value}",
                    )
            elif level == ModificationLevel.OTHER:
                self.add(
                    "revision.forbidden_change",
                    detail=f"revision {r}: changes outside form filling",
                )
            for lock_rev, lock_field, spec in locks:
                if lock_rev < r:
                    hit = sorted(n for n in set(altered) | set(removed) if spec.is_locked(n))
                    if hit:
                        self.add(
                            "fieldmdp.violation",
                            lock_field,
                            f"revision {r} changed locked field(s) {', '.join(hit)}",
                        )
            timestamps_here = {s.field for s in by_rev.get(r, ()) if s.kind == "timestamp"}
            added_fields = [n for n in added_fields if n not in timestamps_here]
            if added_fields:
                self.add(
                    "field.added_after_signing", detail=f"revision {r}: {', '.join(added_fields)}"
                )
            for n in altered + removed:
                self.add("field.changed_after_signing", n, f"revision {r}")
            if added_annots:
                self.add("annotation.added", detail=f"revision {r}: {'; '.join(added_annots)}")
            if signed_by is None and (level is None or level > ModificationLevel.LTA_UPDATES):
                self.add("revision.unsigned", detail=f"revision {r} ({level_name})")
            prev, prev_fields, prev_annots = new, new_fields, new_annots
        self._review_locks(locks, docmdp)
        return changes

    def _review_locks(
        self, locks: list[tuple[int, str, FieldMDPSpec]], docmdp: MDPPerm | None
    ) -> None:
        """pyHanko's own review from each locking signature on (only those carry a FieldMDP)."""
        for lock_rev, lock_field, spec in locks:
            if lock_rev >= self.total - 1:
                continue
            result = DEFAULT_DIFF_POLICY.review_file(
                self.reader, lock_rev, field_mdp_spec=spec, doc_mdp=docmdp
            )
            if isinstance(result, SuspiciousModification) and "locked" in str(result):
                self.add("fieldmdp.violation", lock_field, str(result).splitlines()[0][:300])

    def _check_coverage_of_file(self, sigs: list[_Sig], changes: dict[int, Change]) -> None:
        """The last signature, or only LTA updates after it, must account for the whole file."""
        last = max((s.revision for s in sigs if s.revision is not None), default=None)
        if last is None:
            return
        after = [
            c for r, c in changes.items() if r > last and c.level not in ("NONE", "LTA_UPDATES")
        ]
        if after:
            self.add(
                "revision.not_covered",
                detail=f"revisions {', '.join(str(c.revision) for c in after)} after the last signature",
            )

    def _revinfo(self, reader: PdfFileReader) -> _Revinfo:
        certs: list[x509.Certificate] = []
        crls: list[crl.CertificateList] = []
        ocsps: list[ocsp.OCSPResponse] = []
        try:
            dss = DocumentSecurityStore.read_dss(reader)
        except Exception:  # noqa: BLE001 - no DSS, or an unreadable one: decide without it
            dss = None
        if dss is not None:
            certs.extend(dss.load_certs())
            ocsps.extend(ocsp.OCSPResponse.load(o.get_object().data) for o in dss.ocsps)
            crls.extend(crl.CertificateList.load(c.get_object().data) for c in dss.crls)
        return _Revinfo(certs, crls, ocsps)

    async def _signature(
        self, sig: _Sig, doc_revinfo: _Revinfo, changes: dict[int, Change]
    ) -> SignatureReport:
        f = sig.field
        after = tuple(
            c for r, c in sorted(changes.items()) if sig.revision is not None and r > sig.revision
        )
        levels = [c.level for c in after]
        mod_level = (
            "FORBIDDEN"
            if "FORBIDDEN" in levels
            else max((ModificationLevel[lv] for lv in levels), default=ModificationLevel.NONE).name
        )
        base: dict[str, Any] = {
            "field": f,
            "kind": sig.kind,
            "subfilter": sig.subfilter,
            "revision": sig.revision,
            "changes_after": after,
            "modification_level": mod_level,
        }
        if sig.emb is None:
            self.add("signature.unreadable", f, sig.error or "")
            return SignatureReport(verdict=Verdict.INVALID, **base)
        emb = sig.emb
        allowed = TS_SUBFILTERS if sig.kind == "timestamp" else SIG_SUBFILTERS
        before = len(self.findings)
        if sig.subfilter not in allowed:
            self.add("signature.unknown_subfilter", f, f"SubFilter {sig.subfilter}")
        br = tuple(int(x) for x in emb.byte_range) if _int_list(emb.byte_range) else ()
        base["byte_range"] = br
        if not self._byte_range_ok(br):
            self.add("signature.byte_range", f, f"ByteRange {str(emb.byte_range)[:80]}")
        try:
            coverage = emb.evaluate_signature_coverage()
        except Exception as e:  # noqa: BLE001
            coverage = SignatureCoverageLevel.UNCLEAR
            self.add("signature.coverage", f, f"{type(e).__name__}")
        base["coverage"] = coverage.name
        if coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            self.add("signature.coverage", f, coverage.name)
        try:
            docmdp = emb.docmdp_level
            fieldmdp = emb.fieldmdp
        except Exception:  # noqa: BLE001
            docmdp, fieldmdp = None, None
        base["docmdp"] = (
            f"P={docmdp.value}" if docmdp is not None and sig.kind == "certification" else None
        )
        base["fieldmdp"] = _describe_lock(fieldmdp)

        signed_data = emb.signed_data
        try:
            cert = emb.signer_cert
        except Exception as e:  # noqa: BLE001
            self.add("signature.not_checked", f, f"no signer certificate: {e}")
            return SignatureReport(verdict=Verdict.INVALID, **base)
        base.update(
            signer=cert.subject.human_friendly,
            issuer=cert.issuer.human_friendly,
            serial=format(cert.serial_number, "x"),
            fingerprint=hashlib.sha256(cert.dump()).hexdigest(),
            digest_algorithm=emb.md_algorithm,
            signature_algorithm=emb.signer_info["signature_algorithm"]["algorithm"].native,
        )
        self._check_algorithms(f, emb, cert)
        revinfo = _Revinfo(
            doc_revinfo.certs + list(emb.other_embedded_certs),
            doc_revinfo.crls + _archived_crls(emb),
            doc_revinfo.ocsps + _archived_ocsps(emb),
        )
        if sig.kind == "timestamp":
            return await self._timestamp(sig, revinfo, base, before)

        try:
            digest = emb.compute_digest()
            eci = signed_data["encap_content_info"]
            intact, valid = generic_cms.validate_sig_integrity(
                emb.signer_info,
                cert,
                expected_content_type=eci["content_type"].native,
                actual_digest=digest,
                sig_validator=self.trust.sig_validator,
            )
        except Exception as e:  # noqa: BLE001 - structural CMS problems
            self.add("signature.not_checked", f, f"{type(e).__name__}: {str(e)[:200]}")
            intact = valid = None
        base.update(intact=intact, valid=valid)
        if intact is None:
            pass
        elif not intact:
            self.add("signature.digest_mismatch", f)
        elif not valid:
            self.add("signature.bad_value", f)

        # timing: the signer's claim, and a timestamp that proves it
        # the timestamp validation context is only built when there is a token to check
        ts_vc = (
            self.trust.context(
                moment=self.moment,
                other_certs=revinfo.certs,
                crls=revinfo.crls,
                ocsps=revinfo.ocsps,
            )
            if _has_timestamp_token(emb.signer_info)
            else None
        )
        proven: datetime | None = None
        try:
            timing = await generic_cms.collect_timing_info(
                emb.signer_info, ts_vc, raw_digest=emb.compute_digest
            )
        except Exception as e:  # noqa: BLE001
            self.add("signature.timestamp_invalid", f, f"{type(e).__name__}: {str(e)[:200]}")
            timing = {}
        claimed = timing.get("signer_reported_dt") or _safe(lambda: emb.self_reported_timestamp)
        base["signing_time"] = _iso(claimed)
        tst = timing.get("timestamp_validity")
        if tst is not None:
            base["timestamp_time"] = _iso(tst.timestamp)
            if not (tst.intact and tst.valid):
                self.add("signature.timestamp_invalid", f)
            elif not tst.trusted:
                self.add("signature.timestamp_untrusted", f)
            else:
                proven = tst.timestamp

        outcome = await self._trust(cert, revinfo, proven)
        base.update(trusted=outcome.trusted, trust_path=outcome.path, revocation=outcome.revocation)
        self._trust_findings(f, outcome, proven)
        verdict = Verdict.worst(x.severity for x in self.findings[before:] if x.field == f)
        return SignatureReport(verdict=verdict, **base)

    async def _trust(
        self, cert: x509.Certificate, revinfo: _Revinfo, proven: datetime | None
    ) -> PathOutcome:
        """Validity at the proven signing time when a trusted timestamp proves it, else now."""
        moment = proven or self.moment
        outcome = await self.trust.validate_signer(cert, revinfo, moment)
        if outcome.problem == "signature.revoked" and proven is None:
            return outcome
        return outcome

    def _trust_findings(self, f: str, outcome: PathOutcome, proven: datetime | None) -> None:
        if outcome.problem == "signature.revoked":
            if (
                proven is not None
                and outcome.revoked_at is not None
                and outcome.revoked_at > proven
            ):
                self.add("signature.revoked_later", f, outcome.detail)
            else:
                self.add("signature.revoked", f, outcome.detail)
        elif outcome.problem is not None:
            self.add(outcome.problem, f, outcome.detail[:300])
        elif outcome.revocation == "unknown":
            self.add(
                "signature.revocation_required"
                if self.trust.require_revocation
                else "signature.revocation_unknown",
                f,
            )

    async def _timestamp(
        self, sig: _Sig, revinfo: _Revinfo, base: dict[str, Any], before: int
    ) -> SignatureReport:
        emb = sig.emb
        assert emb is not None
        f = sig.field
        vc = self.trust.context(
            moment=self.moment, other_certs=revinfo.certs, crls=revinfo.crls, ocsps=revinfo.ocsps
        )
        try:
            st = await generic_cms.validate_tst_signed_data(emb.signed_data, vc, emb.compute_digest)
            intact, valid, trusted = (
                st["intact"],
                st["valid"],
                st["trust_problem_indic"] is None and st.get("validation_path") is not None,
            )
            base.update(
                intact=intact,
                valid=valid,
                trusted=trusted,
                timestamp_time=_iso(st.get("timestamp")),
                signing_time=_iso(st.get("timestamp")),
            )
            path = st.get("validation_path")
            if path is not None:
                base["trust_path"] = tuple(
                    c.subject.human_friendly for c in path if hasattr(c, "subject")
                )
            if not intact:
                self.add("signature.digest_mismatch", f)
            elif not valid:
                self.add("signature.bad_value", f)
            elif not trusted:
                self.add("signature.timestamp_untrusted", f, str(st.get("trust_problem_indic")))
        except Exception as e:  # noqa: BLE001
            self.add("signature.timestamp_invalid", f, f"{type(e).__name__}: {str(e)[:200]}")
        verdict = Verdict.worst(x.severity for x in self.findings[before:] if x.field == f)
        return SignatureReport(verdict=verdict, **base)

    def _byte_range_ok(self, br: tuple[int, ...]) -> bool:
        if len(br) != 4 or br[0] != 0 or min(br) < 0:
            return False
        _, b, c, d = br
        if not (b < c and c + d <= len(self.data)):
            return False
        hole = self.data[b:c]
        return (
            hole[:1] == b"<"
            and hole[-1:] == b">"
            and re.fullmatch(rb"<[0-9A-Fa-f]*>", hole) is not None
        )

    def _check_algorithms(self, f: str, emb: EmbeddedPdfSignature, cert: x509.Certificate) -> None:
        mech = str(emb.signer_info["signature_algorithm"]["algorithm"].native)
        if emb.md_algorithm not in STRONG_DIGESTS or "sha1" in mech or "md5" in mech:
            self.add("signature.weak_algorithm", f, f"{emb.md_algorithm} / {mech}")
        pub = cert.public_key
        if pub.algorithm == "rsa" and pub.bit_size < 2048:
            self.add("signature.weak_algorithm", f, f"RSA {pub.bit_size} bits")

    def _check_expectation(self, sigs: list[_Sig], reports: list[SignatureReport]) -> None:
        exp = self.expected
        assert exp is not None
        actual = [r for r in reports if r.kind != "timestamp"]
        expected_fields = [e.field for e in exp.signatures]
        actual_fields = [r.field for r in actual]
        by_field = {r.field: r for r in actual}
        for e in exp.signatures:
            r = by_field.get(e.field)
            if r is None:
                self.add("workflow.missing_signature", e.field, f"role {e.role}")
            elif (r.fingerprint or "").lower() != e.fingerprint.lower():
                self.add(
                    "workflow.signer_mismatch",
                    e.field,
                    f"expected certificate {e.fingerprint[:16]}…, found {(r.fingerprint or '?')[:16]}… ({r.signer})",
                )
        for r in actual:
            if r.field not in expected_fields:
                self.add("workflow.unexpected_signature", r.field, r.signer or "")
        common_expected = [x for x in expected_fields if x in actual_fields]
        common_actual = [x for x in actual_fields if x in expected_fields]
        if common_expected != common_actual:
            self.add(
                "workflow.order_mismatch",
                detail=f"expected {common_expected}, found {common_actual}",
            )
        if exp.revision_sha256:
            self._check_stored_revisions(exp.revision_sha256)

    def _check_stored_revisions(self, stored: Sequence[str]) -> None:
        """Every stored revision must be a prefix of this file ending at a revision boundary, in order.

        A workflow step may add more than one PDF revision (the signature, then its
        validation data), so stored revision k is not PDF revision k.
        """
        boundary: dict[str, int] = {}
        for r, end in enumerate(self.ends):
            prefix = self.data[:end]
            bare = prefix.rstrip(b"\r\n")
            for variant in (prefix, bare, bare + b"\n", bare + b"\r\n"):
                boundary.setdefault(hashlib.sha256(variant).hexdigest(), r)
        last = -1
        for k, digest in enumerate(stored):
            r = boundary.get(digest.lower())
            if r is None:
                self.add(
                    "revision.mismatch", detail=f"stored revision {k} is not a prefix of this file"
                )
            elif r <= last:
                self.add("revision.mismatch", detail=f"stored revision {k} is out of order")
            else:
                last = r
        if last >= 0:
            unrecorded = [
                r
                for r in range(last + 1, self.total)
                if self.levels.get(r, "OTHER") not in ("NONE", "LTA_UPDATES")
            ]
            if unrecorded:
                self.add(
                    "revision.count_mismatch", detail=f"revision(s) {unrecorded} are not recorded"
                )


def _has_timestamp_token(signer_info: Any) -> bool:
    """A signature or content timestamp among the attributes; True when unsure."""
    try:
        for signed in (False, True):
            for _ in generic_cms.extract_tst_data_iter(signer_info, signed=signed):
                return True
    except Exception:  # noqa: BLE001 - let pyHanko meet the damage with a real context
        return True
    return False


def _is_certification(reader: PdfFileReader, ref: Any) -> bool:
    try:
        perms = reader.root["/Perms"]
        return perms.raw_get("/DocMDP").reference == ref.reference
    except Exception:  # noqa: BLE001
        return False


def _int_list(value: Any) -> bool:
    try:
        return all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    except TypeError:
        return False


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


def _describe_lock(spec: FieldMDPSpec | None) -> str | None:
    if spec is None:
        return None
    fields = f": {', '.join(spec.fields)}" if spec.fields else ""
    return f"{spec.action.name}{fields}"


def _archived_ocsps(emb: EmbeddedPdfSignature) -> list[ocsp.OCSPResponse]:
    return list(_archived(emb, "ocsp"))


def _archived_crls(emb: EmbeddedPdfSignature) -> list[crl.CertificateList]:
    return list(_archived(emb, "crl"))


def _archived(emb: EmbeddedPdfSignature, kind: str) -> Iterable[Any]:
    """Revocation data in the signer's adbe-revocationInfoArchival attribute (PKCS#7 era)."""
    try:
        attrs = emb.signer_info["signed_attrs"]
        for attr in attrs:
            if attr["type"].native == "adobe_revocation_info_archival":
                for value in attr["values"]:
                    yield from (value[kind] or [])
    except Exception:  # noqa: BLE001
        return


def _walk_fields(hist: Any) -> Iterable[tuple[str, Any]]:
    """(fully qualified name, field dictionary) of every terminal field of the AcroForm."""
    try:
        top = hist.root["/AcroForm"]["/Fields"]
    except (KeyError, TypeError):
        return
    stack = [(obj, "") for obj in reversed(list(top))]
    seen = 0
    while stack and seen < MAX_WALK:
        seen += 1
        item, prefix = stack.pop()
        obj = item.get_object()
        if not isinstance(obj, generic.DictionaryObject):
            continue
        part = obj.get("/T")
        name = (
            f"{prefix}.{part}"
            if prefix and part is not None
            else (str(part) if part is not None else prefix)
        )
        kids = obj.get("/Kids")
        if kids is not None and any(
            "/T" in k.get_object()
            for k in kids
            if isinstance(k.get_object(), generic.DictionaryObject)
        ):
            stack.extend((k, name) for k in reversed(list(kids)))
        else:
            yield name, obj


def _field_values(hist: Any) -> dict[str, tuple[str | None, Any]]:
    """Field name -> (field type, value); signature values as their object number."""
    out: dict[str, tuple[str | None, Any]] = {}
    for name, obj in _walk_fields(hist):
        ft = _name(obj.get("/FT"))
        raw = obj.raw_get("/V") if "/V" in obj else None
        if isinstance(raw, generic.IndirectObject):
            value: Any = f"ref {raw.idnum}" if ft == "/Sig" else str(raw.get_object())
        else:
            value = None if raw is None else str(raw)
        if ft == "/Sig":
            value = None  # a signature field filled later is form filling, judged by the diff rules
        out[name] = (ft, value)
    return out


def _annotations(hist: Any) -> dict[tuple[int, int], str]:
    """(page index, annotation object number) -> subtype, for every page."""
    out: dict[tuple[int, int], str] = {}
    try:
        pages = hist.root["/Pages"]
    except (KeyError, TypeError):
        return out
    stack = [pages]
    index = 0
    visited = 0
    while stack and visited < MAX_WALK:
        visited += 1
        node = stack.pop()
        node = node.get_object() if hasattr(node, "get_object") else node
        if not isinstance(node, generic.DictionaryObject):
            continue
        if _name(node.get("/Type")) == "/Pages" or "/Kids" in node:
            stack.extend(reversed(list(node.get("/Kids", []))))
            continue
        annots = node.get("/Annots")
        if annots is not None:
            for a in annots.get_object() if hasattr(annots, "get_object") else annots:
                key = a.idnum if isinstance(a, generic.IndirectObject) else id(a)
                try:
                    sub = _name(a.get_object().get("/Subtype")) or "?"
                except Exception:  # noqa: BLE001
                    sub = "?"
                out[(index, key)] = sub
        index += 1
    return out


__all__ = [
    "Expectation",
    "ExpectedSignature",
    "Limits",
    "PathOutcome",
    "TrustStore",
    "verify_pdf",
]
