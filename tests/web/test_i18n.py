"""The Vietnamese catalog: complete for what officers see, placeholders intact, compiled on start."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

from babel.messages.pofile import read_po

from esign.web.i18n import TRANSLATIONS, compile_catalogs, extract_error_templates

PO = TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def catalog():  # type: ignore[no-untyped-def]
    with PO.open("rb") as f:
        return read_po(f, locale="vi")


def test_every_translation_keeps_the_placeholders_of_its_source() -> None:
    for message in catalog():
        if message.id and message.string:
            assert set(PLACEHOLDER.findall(message.string)) == set(PLACEHOLDER.findall(message.id)), message.id


def test_everything_from_the_web_and_the_services_is_translated() -> None:
    untranslated = [
        m.id for m in catalog()
        if m.id and not m.string
        and any(path.startswith(("esign/web", "esign/services", "esign/signing", "esign/workflow"))
                for path, _line in m.locations)
    ]
    assert untranslated == []


def test_the_catalog_is_compiled_when_the_mo_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, folder, ignore=shutil.ignore_patterns("*.mo"))
    written = compile_catalogs(folder)
    assert written == [folder / "vi" / "LC_MESSAGES" / "messages.mo"]
    assert compile_catalogs(folder) == []  # up to date: nothing to do


def test_error_templates_are_extracted_from_raise_statements() -> None:
    source = b'raise NotFound("There is no %(thing)s", thing=x)\nraise ValueError("a bug")\n' \
             b'Pending(ref="r", message="Waiting")\n'
    found = [text for _line, _ctx, text, _c in extract_error_templates(io.BytesIO(source).read())]
    assert found == ["There is no %(thing)s", "Waiting"]
