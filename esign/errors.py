"""The error tree.

Every error carries a sentence an officer can act on (``str(err)``), and an
HTTP status where the web layer needs one. Write the sentence as a constant
template with ``%(name)s`` placeholders and pass the values as keywords
(``CertificateRefused("Valid until %(end)s", end=...)``): the template is the
translation key. Third-party exceptions are wrapped
where they enter the project (``raise TokenUnavailable(...) from e``).
Outcomes that are results ("this signature is invalid", "still waiting for the
phone") are values, not exceptions.

This module imports nothing from esign.
"""

from __future__ import annotations


class EsignError(Exception):
    """Root of every error esign raises on purpose."""

    status = 500
    #: short machine-readable code for JSON responses
    code = "error"

    def __init__(self, message: str, **params: object) -> None:
        #: the sentence with %(name)s placeholders; it is also the translation key,
        #: so the web layer can show it in Vietnamese or English
        self.template = message
        self.params = params
        self.message = message % params if params else message
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


# --- configuration -----------------------------------------------------------


class ConfigError(EsignError):
    """The configuration is missing, misspelt or insecure; start-up stops."""

    code = "config"


# --- workflow ----------------------------------------------------------------


class WorkflowError(EsignError):
    status = 409
    code = "workflow"


class DefinitionError(WorkflowError):
    """A workflow definition file is invalid; names the file and the key."""

    status = 500
    code = "definition"


class ActionNotAllowed(WorkflowError):
    """The action does not exist in this state or the actor lacks the role."""

    status = 403
    code = "action_not_allowed"


class CommentRequired(WorkflowError):
    status = 400
    code = "comment_required"


# --- documents and storage -----------------------------------------------------


class DocumentError(EsignError):
    status = 400
    code = "document"


class InvalidPdf(DocumentError):
    """An upload that is not a usable PDF (not a PDF, encrypted, unparseable)."""

    status = 422
    code = "invalid_pdf"


class DocumentTooLarge(DocumentError):
    status = 413
    code = "too_large"


class NotFound(EsignError):
    status = 404
    code = "not_found"


class Forbidden(EsignError):
    status = 403
    code = "forbidden"


class TooManyAttempts(EsignError):
    """Sign-in refused for a while after repeated wrong passwords."""

    status = 429
    code = "too_many_attempts"


class Conflict(EsignError):
    """Someone else changed the document first; reload and try again."""

    status = 409
    code = "conflict"


class SubscriptionRefused(EsignError):
    """A browser's Web Push subscription cannot be stored (malformed, or push is turned off)."""

    status = 400
    code = "push_subscription"


class IntegrityError(EsignError):
    """Stored data broke an invariant (hash mismatch, prefix broken, chain broken)."""

    status = 500
    code = "integrity"


# --- signing -------------------------------------------------------------------


class SigningError(EsignError):
    status = 422
    code = "signing"


class CertificateRefused(SigningError):
    """The certificate is not the acting officer's, is expired or revoked."""

    status = 403
    code = "certificate_refused"


class SignatureValueInvalid(SigningError):
    """The returned signature value does not verify against the certificate and tbs."""

    code = "signature_invalid"


class UploadRefused(SigningError):
    """A PDF signed by a whole-document plugin does not add exactly the expected signature."""

    code = "upload_refused"


class RequestExpired(SigningError):
    status = 410
    code = "request_expired"


class BackendError(SigningError):
    """A signing device or service could not do what was asked."""

    status = 502
    code = "backend"


class TokenUnavailable(BackendError):
    status = 503
    code = "token_unavailable"


class WrongPin(BackendError):
    status = 401
    code = "wrong_pin"


class PinLocked(BackendError):
    status = 423
    code = "pin_locked"


class UnknownCredential(BackendError):
    status = 404
    code = "unknown_credential"


class Declined(BackendError):
    status = 409
    code = "declined"


class BackendExpired(BackendError):
    status = 410
    code = "backend_expired"


# --- verification --------------------------------------------------------------


class VerificationError(EsignError):
    """Verification could not be carried out at all (not: 'the PDF is invalid')."""

    status = 422
    code = "verification"
