"""The words of the public web pages, as gettext sees them: extracted from templates/web/*.html
(Jinja's `{% trans %}` and `_()`) and from digest/web/*.py (`N_()`), so a test can check that
every shipped catalogue (digest/render/locale/<lang>/LC_MESSAGES/web.po) says each of them.

`python -m tests.web_messages` brings each web.po up to date: new words are added untranslated,
words no page says any more are dropped, translations are kept. The app reads the .po files
themselves (digest.render.language): there is nothing to compile.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_python
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from digest.render.language import CATALOGUES, WEB_DOMAIN
from digest.web.templating import TEMPLATES_DIR

ROOT = Path(__file__).resolve().parents[1]
WEB_CODE = ROOT / "digest" / "web"
# As digest.web.templating's environment reads the templates.
JINJA_OPTIONS = {"trimmed": "true", "trim_blocks": "true", "lstrip_blocks": "true"}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def public_templates() -> list[Path]:
    """The pages a reader meets (the editor's, under editor/, are English only)."""
    return sorted(TEMPLATES_DIR.glob("*.html"))


def web_messages() -> dict[str, list[str]]:
    """msgid -> where it is said ("signup.html:12")."""
    found: dict[str, list[str]] = {}

    def add(message: str | tuple[str | None, ...] | None, where: str) -> None:
        text = message[0] if isinstance(message, tuple) else message
        # `_(title)`: a variable, not a message (its values are marked with N_ in the code).
        if text:
            found.setdefault(text, []).append(where)

    for path in public_templates():
        with path.open("rb") as source:
            for line, _, message, _ in babel_extract(source, KEYWORDS, [], JINJA_OPTIONS):
                add(message, f"{path.name}:{line}")
    for path in sorted(WEB_CODE.glob("*.py")):
        with path.open("rb") as source:
            for line, func, message, _ in extract_python(source, {"N_": None}, [], {}):
                if func == "N_":
                    add(message, f"{path.relative_to(ROOT)}:{line}")
    return found


def catalogue_path(language: str) -> Path:
    return CATALOGUES / language / "LC_MESSAGES" / f"{WEB_DOMAIN}.po"


def read_catalogue(language: str) -> Catalog:
    with catalogue_path(language).open("rb") as po:
        return read_po(po, locale=language, domain=WEB_DOMAIN)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def update(language: str) -> None:
    """Rewrite the catalogue with the pages' words in their order: its header (the first
    block) and each translation kept, new words untranslated, others dropped."""
    path = catalogue_path(language)
    header = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
    old = read_catalogue(language)
    blocks = [header]
    for msgid in web_messages():
        kept = old.get(msgid)
        text = kept.string if kept is not None and isinstance(kept.string, str) else ""
        blocks.append(f"msgid {_quoted(msgid)}\nmsgstr {_quoted(text)}")
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


if __name__ == "__main__":
    for po in sorted(CATALOGUES.glob(f"*/LC_MESSAGES/{WEB_DOMAIN}.po")):
        update(po.parent.parent.name)  # a new language: copy en's web.po to it first
