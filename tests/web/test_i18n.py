"""The web page's languages: the Spanish catalogue is complete and compiled, and a page is served in
the browser's language or the one its member chose."""

from __future__ import annotations

import catalogue
from conftest import SiteNet

from conode.web import i18n


def test_every_text_of_the_page_has_a_spanish_translation() -> None:
    template = catalogue.extract()
    spanish = catalogue.read("es")
    wanted = {m.id if isinstance(m.id, str) else tuple(m.id) for m in template if m.id}
    assert len(wanted) > 150
    held = {m.id if isinstance(m.id, str) else tuple(m.id): m.string for m in spanish if m.id}
    missing = sorted(str(w) for w in wanted if w not in held or not catalogue._translated(held[w]))
    assert missing == [], "run `python tests/web/catalogue.py` and translate: " + ", ".join(missing)


def test_the_spanish_translations_keep_every_placeholder() -> None:
    spanish = catalogue.read("es")
    problems = [(m.id, [str(e) for e in errors]) for m, errors in spanish.check() if errors]
    assert problems == []


def test_the_committed_mo_file_is_the_compiled_po_file() -> None:
    for lang in catalogue.LANGUAGES:
        committed = catalogue.po_path(lang).with_suffix(".mo").read_bytes()
        assert committed == catalogue.compiled(catalogue.read(lang)), lang


def test_the_browsers_language_is_chosen_unless_the_member_chose() -> None:
    assert i18n.choose(None, "es-ES,es;q=0.9,en;q=0.8") == "es"
    assert i18n.choose(None, "fr-FR,fr;q=0.9,es;q=0.5") == "es"
    assert i18n.choose(None, "en;q=0.2,es;q=0.9") == "es"
    assert i18n.choose(None, "fr") == "en"
    assert i18n.choose("en", "es") == "en"


async def test_a_page_is_served_in_spanish_to_a_spanish_browser_and_by_choice(
    site_net: SiteNet,
) -> None:
    ana = await site_net.logged_in("ana")
    spanish = await ana.request("GET", "/", headers={"accept-language": "es-ES,es;q=0.9"})
    text = ana.text(spanish)
    assert '<html lang="es">' in text and "Últimos pagos" in text and "Latest payments" not in text
    english = ana.text(await ana.get("/"))
    assert "Latest payments" in english
    await ana.post("/lang", {"lang": "es", "next": "/pay"})
    chosen = ana.text(await ana.get("/pay"))  # the client still says English: the choice wins
    assert "Enviar una factura" in chosen
    await ana.post("/pay", {"to": "coop1-m0", "amount": "99"})
    refused = ana.text(await ana.get("/pay"))
    assert (
        "Rechazado: coop0-m0 quedaría 94,00 CXT por debajo de su límite de crédito de 5,00 CXT."
        in refused
    )
