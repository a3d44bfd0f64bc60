"""Languages of the page: gettext catalogues (``conode/web/locale``) and choosing one per request.

The catalogues are ``locale/<lang>/LC_MESSAGES/conode.po``, compiled to the
``.mo`` files committed beside them (``tests/web/test_i18n.py`` checks that
each ``.mo`` is the compilation of its ``.po`` and that every text of the
templates and of ``conode.web`` is translated), so an installed node needs
no build step. English is the source language.
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT", "DOMAIN", "LANGUAGES", "LOCALE_DIR", "choose", "translations"]

DOMAIN: Final = "conode"
LOCALE_DIR: Final = Path(__file__).with_name("locale")
LANGUAGES: Final = {"en": "English", "es": "Español"}
DEFAULT: Final = "en"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of ``lang`` (English: the texts as written)."""
    if lang == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def choose(chosen: str | None, accept_language: str) -> str:
    """The member's choice if they made one, else the browser's first language we have."""
    if chosen in LANGUAGES:
        return chosen
    ranked = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower().split("-")[0]))
    for _q, _pos, lang in sorted(ranked):
        if lang in LANGUAGES:
            return lang
    return DEFAULT
