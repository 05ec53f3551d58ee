"""Languages: Vietnamese by default, English on request.

Catalogs live in ``esign/web/translations/<lang>/LC_MESSAGES/messages.po``;
the compiled ``.mo`` files are build products, not sources, so the app
compiles any that are missing or older than their ``.po`` when it starts.

Error messages raised by the services are constant templates with
``%(name)s`` placeholders (see :mod:`esign.errors`); the template is the
translation key. :func:`extract_error_templates` lets ``pybabel extract``
collect them from ``raise SomeError("...")`` statements.
"""

from __future__ import annotations

import ast
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}


def compile_catalogs(folder: Path = TRANSLATIONS) -> list[Path]:
    """Compile every ``messages.po`` whose ``.mo`` is missing or stale; returns what was written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(folder.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parent.parent.name)
        tmp = mo.with_suffix(".mo.tmp")
        try:
            with tmp.open("wb") as out:
                write_mo(out, catalog)
            tmp.replace(mo)
        except OSError as e:
            # a read-only installation: the app still runs, in the source language
            log.warning("cannot compile %s: %s", po, e)
            tmp.unlink(missing_ok=True)
            continue
        written.append(mo)
    return written


#: exceptions that signal a bug, not something an officer can act on: never translated
_PROGRAMMING_ERRORS = frozenset({"ValueError", "TypeError", "RuntimeError", "AssertionError", "KeyError",
                                 "NotImplementedError", "AttributeError", "IndexError", "LookupError"})


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def extract_messages(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, Any, Any, list[str]]]:
    """Babel extractor for esign's Python: gettext calls, and the templates of errors.

    Besides ``_()``/``gettext``/``_l()`` calls (Babel's own Python extractor),
    collects the first string argument of ``raise SomeError("...")`` and the
    ``message="..."`` keyword of calls such as ``Pending(..., message="...")``.
    """
    from babel.messages.extract import extract_python

    source = fileobj.read()
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, options)
    yield from extract_error_templates(source)


def extract_error_templates(source: bytes) -> Iterator[tuple[int, str, str, list[str]]]:
    """(line, "", template, []) for every error template and device message in ``source``."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            call = node.exc
            name = _call_name(call.func)
            if name[:1].isupper() and name not in _PROGRAMMING_ERRORS and call.args:
                text = _literal(call.args[0])
                if text:
                    yield call.lineno, "", text, []
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "message":
                    text = _literal(kw.value)
                    if text:
                        yield node.lineno, "", text, []


def _literal(node: ast.AST) -> str:
    """A string constant, also when written as implicitly joined pieces."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""
