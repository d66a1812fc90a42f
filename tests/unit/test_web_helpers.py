"""Pure helpers behind the public pages: the web copy, address masking, name cleaning."""

from __future__ import annotations

import pytest

from digest.placeholders import FIELDS, Slots
from digest.subscribers.actions import NAME_MAX, clean_name
from digest.web.links import BadLink, mask_email, token_id
from digest.web.online import web_copy
from tests.helpers import link_keys, token

ph = Slots.new()


def test_web_copy_leaves_no_placeholder_and_no_personal_link() -> None:
    html = (
        f"<p>Dear {ph.NAME} ({ph.EMAIL})</p><a href='{ph.UNSUBSCRIBE_URL}'>u</a>"
        f"<a href='{ph.PREFERENCES_URL}'>p</a><a href='{ph.VIEW_ONLINE_URL}'>v</a>"
        f"<a href='{ph.UNSUBSCRIBE_URL}'>u again</a>"
    )
    out = web_copy(html, ph, links_url="/links", view_url="/v/tok")
    assert "[[digest" not in out
    # The paragraph naming the address is gone; every personal link points at /links.
    assert out == (
        "<a href='/links'>u</a><a href='/links'>p</a><a href='/v/tok'>v</a>"
        "<a href='/links'>u again</a>"
    )
    # Every placeholder render may leave, side by side, leaves nothing behind.
    every = "<div>" + "|".join(ph.slot(field) for field in FIELDS) + "</div>"
    assert "[[" not in web_copy(every, ph, links_url="/links", view_url="/v/tok")


def test_web_copy_fills_only_the_issues_own_slots() -> None:
    # Text from an item that looks like a slot (the old spelling, or another render's marker)
    # is text: it keeps its place, it is not turned into a link or dropped.
    other = Slots.new()
    html = f'<a href="https://feed.example/?u=[[digest:unsubscribe_url]]&e={other.EMAIL}">x</a>'
    assert web_copy(html, ph, links_url="/links", view_url="/v/tok") == html


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("ada@example.org", "a•••@example.org"),
        ("x@y.z", "x•••@y.z"),
        ("no-at-sign", "•••"),
    ],
)
def test_mask_email(email: str, masked: str) -> None:
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Ada   Lovelace ", "Ada Lovelace"),
        ("Ada\r\nBcc: evil@example.org", "Ada Bcc: evil@example.org"),
        ("Zoë\u200b\u202eKing\x00", "Zoë King"),
        ("", ""),
    ],
)
def test_clean_name_is_one_printable_line(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


def test_clean_name_is_capped() -> None:
    assert len(clean_name("a" * 1000)) == NAME_MAX


def test_token_id_refuses_other_purposes_and_giants() -> None:
    assert token_id("unsubscribe", token("unsubscribe", 5), link_keys()) == 5
    with pytest.raises(BadLink):
        token_id("unsubscribe", token("view", 5), link_keys())
    with pytest.raises(BadLink):
        token_id("unsubscribe", "x" * 10_000, link_keys())


@pytest.mark.parametrize(
    ("greeting", "neutral"),
    [
        (f"<p>Hello {ph.NAME},</p>", "<p>Hello,</p>"),
        (f"<p>Hola, {ph.NAME}:</p>", "<p>Hola:</p>"),
        (f"<p>Bonjour\n  {ph.NAME},</p>", "<p>Bonjour,</p>"),
        (f"<p>Hello{ph.GREETING_NAME},</p>", "<p>Hello,</p>"),
        ("<p>Hi[[digest:some_future_field]]!</p>", "<p>Hi[[digest:some_future_field]]!</p>"),
    ],
    # Fixed ids: the markers are random per process, and xdist workers must agree.
    ids=["hello", "hola", "bonjour", "greeting-name", "unknown-field"],
)
def test_web_copy_greets_nobody_in_particular(greeting: str, neutral: str) -> None:
    assert web_copy(greeting, ph, links_url="/l", view_url="/v") == neutral


def test_web_copy_drops_the_paragraph_naming_the_address() -> None:
    html = (
        "<p>Keep me</p><p style='margin:0'>Sent to <b>"
        + ph.EMAIL
        + "</b> because you subscribed.</p><p>And me</p>"
    )
    assert web_copy(html, ph, links_url="/l", view_url="/v") == "<p>Keep me</p><p>And me</p>"
