"""The web page's message catalogues: extract the texts, update the ``.po`` files, compile ``.mo``.

    python tests/web/catalogue.py      # after changing a text: then translate what is new

Texts come from the templates (``_()``, ``ngettext``, ``{% trans %}``) and from
``conode/web/*.py`` (``ctx.t(…)``, ``gettext(…)``, ``N_(…)``). Babel is a test
dependency: an installed node reads the committed ``.mo`` files with the
standard library's ``gettext``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "conode" / "web"
LOCALE = WEB / "locale"
LANGUAGES = ("es",)
METHODS = [("templates/**.html", "jinja2"), ("*.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "t": None, "N_": None}


def extract() -> Catalog:
    """Every text of the page, as a template catalogue."""
    catalog = Catalog(project="conode", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        WEB, METHODS, OPTIONS, KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / "conode.po"


def read(lang: str) -> Catalog:
    with open(po_path(lang), "rb") as file:
        return read_po(file, locale=lang)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def update() -> None:
    template = extract()
    for lang in LANGUAGES:
        path = po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = read(lang) if path.exists() else Catalog(locale=lang, project="conode")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.fuzzy = False  # the header: a fuzzy one is left out of the .mo (and its plurals)
        catalog.copyright_holder = "the conode authors"
        catalog.msgid_bugs_address = ""
        catalog.last_translator = "the conode authors"
        catalog.language_team = "conode"
        with open(path, "wb") as file:
            write_po(file, catalog, width=100, omit_header=False, no_location=True)
        catalog = read(lang)
        path.with_suffix(".mo").write_bytes(compiled(catalog))
        missing = [m.id for m in catalog if m.id and not _translated(m.string)]
        print(f"{lang}: {len(catalog)} texts, {len(missing)} untranslated", file=sys.stderr)


def _translated(string: object) -> bool:
    if isinstance(string, tuple):
        return all(string)
    return bool(string)


if __name__ == "__main__":
    update()
