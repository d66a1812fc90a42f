"""MJML compilation with mjml-python: clear errors, no web fonts."""

from __future__ import annotations

import pytest

from digest.render.errors import MjmlError, RenderError
from digest.render.mjml import compile_mjml

DOC = (
    '<mjml lang="fr"><mj-head><mj-attributes><mj-all font-family="Ubuntu, Arial" />'
    "</mj-attributes></mj-head><mj-body><mj-section><mj-column><mj-text>Bonjour &amp; "
    "<b>salut</b></mj-text></mj-column></mj-section></mj-body></mjml>"
)


def test_valid_mjml_compiles_to_a_responsive_html_document():
    html = compile_mjml(DOC)
    assert html.startswith("<!doctype html>")
    assert '<html lang="fr"' in html
    assert "Bonjour &amp; <b>salut</b>" in html
    assert 'role="presentation"' in html
    assert "@media only screen and (min-width:480px)" in html


def test_no_font_is_fetched_even_for_fonts_mjml_knows():
    # MJML links Google Fonts for Ubuntu, Roboto, Lato... unless told otherwise.
    html = compile_mjml(DOC)
    assert "fonts.googleapis" not in html
    assert "@import" not in html
    assert "<link" not in html


def test_fonts_can_be_opted_into():
    html = compile_mjml(DOC, fonts={"Ubuntu": "https://fonts.example.org/ubuntu.css"})
    assert "https://fonts.example.org/ubuntu.css" in html


@pytest.mark.parametrize(
    "source",
    [
        "<mjml><mj-body><mj-section>",
        "<mjml><mj-body><mj-section><mj-column><mj-text>a</mj-column></mj-section></mj-body></mjml>",
        "not mjml at all",
        "",
    ],
)
def test_invalid_mjml_raises_a_clear_error(source):
    with pytest.raises(MjmlError, match="invalid MJML") as info:
        compile_mjml(source)
    assert isinstance(info.value, RenderError)
