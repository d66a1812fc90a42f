"""The frozen message: every personalised copy parses, decodes to the exact text, and is
valid on the wire (CRLF, dot-stuffed, QP lines <= 76, header lines <= 998)."""

from __future__ import annotations

import html
import random
import re
from email import quoprimime
from email.header import decode_header, make_header
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.policy import SMTP, default
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from digest.delivery import message as message_module
from digest.delivery.message import (
    QP_LINE,
    MessageTemplate,
    TemplateError,
    _body_value,
    _qp,
    _stuff,
    _to_header,
    build_template,
    data_ready,
    personalise,
    unstuff,
)
from digest.delivery.recipient import Recipient
from digest.placeholders import FIELDS, Slots
from digest.tokens import preferences_url, unsubscribe_url
from tests.helpers import read, signer, token

P = Slots.new()  # one render's slots
SUBJECT = "Février 2024 — ça bouge à l’université"
TEXT = (
    f"Hello {P.NAME},\n\nThis month's news ({P.EMAIL}).\n"
    ".a line that starts with a dot\n.\n"
    + ("A long line of news with = signs and ünïcode that needs soft breaks. " * 4 + "\n")
    * 3
    + f"Read online: {P.VIEW_ONLINE_URL}\n"
    f"Preferences: {P.PREFERENCES_URL}\nUnsubscribe: {P.UNSUBSCRIBE_URL}"
)
HTML = (
    f"<html><body><p>Hello {P.NAME},</p>\n"
    + "<p>Item with a trailing space </p>\n.<p>dot</p>\n" * 5
    + f'<a href="{P.VIEW_ONLINE_URL}">view</a>{P.NAME}{P.NAME}'
    f'<a href="{P.PREFERENCES_URL}">prefs</a> <a href="{P.UNSUBSCRIBE_URL}">unsubscribe</a>'
    "</body></html>"
)
NAMES = ["<b>Bob & Co</b>", "Zoë Ünïcode-Müller", "", 'Ann "the" O\'Neil, PhD', "李小龙"]


def make_template(text: str = TEXT, body_html: str = HTML, **kw: str) -> MessageTemplate:
    params = {
        "subject": SUBJECT,
        "list_slug": "news",
        "list_name": "Uni News",
        "from_name": "Université Digest",
        "from_email": "digest@example.org",
        "public_url": "https://digest.example.org",
        **kw,
    }
    return build_template(
        signer=signer(), issue_id=7, html_body=body_html, text_body=text, slots=P, **params
    )  # type: ignore[arg-type]


def content(part: MIMEPart) -> str:
    """A part's decoded text with the wire's CRLF line ends read as newlines."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=default).parsebytes(unstuff(data))
    assert isinstance(msg, EmailMessage)
    return msg


def urls(msg: EmailMessage) -> dict[str, str]:
    """The link tokens in the decoded parts, by kind (u, p, v)."""
    text = "".join(content(part) for part in msg.iter_parts())
    found = re.findall(r"https://digest\.example\.org/([upv])/([A-Za-z0-9_.-]+)", text)
    return dict(found)


def expected(body: str, r: Recipient, escape: bool) -> str:
    """The body as the recipient must read it (tokens are deterministic for a secret)."""
    values = {
        P.NAME: r.name,
        P.GREETING_NAME: f" {r.name}" if r.name else "",
        P.EMAIL: r.email,
        P.UNSUBSCRIBE_URL: "https://digest.example.org/u/"
        + token("unsubscribe", r.subscription_id),
        P.PREFERENCES_URL: "https://digest.example.org/p/"
        + token("preferences", r.subscription_id),
        P.VIEW_ONLINE_URL: "https://digest.example.org/v/" + token("view", 7),
    }
    for key, value in values.items():
        body = body.replace(key, html.escape(value) if escape else value)
    return body if body.endswith("\n") else body + "\n"


@pytest.mark.parametrize("name", NAMES)
def test_each_copy_parses_with_its_own_ids_and_exact_bodies(name: str) -> None:
    template = MessageTemplate.from_bytes(make_template().to_bytes(), signer())
    r = Recipient(delivery_id=1234, subscription_id=56, email="bob@example.com", name=name)
    data = personalise(template, r)
    msg = parse(data)

    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"

    found = urls(msg)
    assert read("unsubscribe", found["u"]) == 56
    assert read("preferences", found["p"]) == 56
    assert read("view", found["v"]) == 7
    assert content(text_part) == expected(TEXT, r, escape=False)
    assert content(html_part) == expected(HTML, r, escape=True)

    assert msg["Message-ID"] == "<d1234.i7@example.org>"
    assert msg["Subject"] == SUBJECT
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Id"] == '"Uni News" <news.example.org>'
    assert msg["To"].addresses[0].addr_spec == "bob@example.com"
    assert msg["To"].addresses[0].display_name == name
    assert msg["From"].addresses[0].display_name == "Université Digest"
    assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
    token = found["u"]
    assert (
        b"\r\nList-Unsubscribe: <https://digest.example.org/u/" + token.encode() + b">, "
        b"<mailto:unsubscribe@example.org?subject=unsubscribe-" + token.encode() + b">\r\n"
    ) in data
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in data


def test_html_escapes_names_and_text_keeps_them() -> None:
    r = Recipient(1, 2, "bob@example.com", "<b>Bob & Co</b>")
    msg = parse(personalise(make_template(), r))
    text_part, html_part = msg.iter_parts()
    assert "Hello <b>Bob & Co</b>," in content(text_part)
    assert "<p>Hello &lt;b&gt;Bob &amp; Co&lt;/b&gt;,</p>" in content(html_part)
    assert "<b>Bob" not in content(html_part)


def test_copies_differ_only_in_their_own_values() -> None:
    template = make_template()
    a = parse(personalise(template, Recipient(1, 10, "a@example.com", "A")))
    b = parse(personalise(template, Recipient(2, 20, "b@example.com", "B")))
    assert a["Message-ID"] != b["Message-ID"]
    assert a["List-Unsubscribe"] != b["List-Unsubscribe"]
    assert a["Subject"] == b["Subject"]


def check_wire_format(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in data.replace(b"\r\n", b""), "bare CR"
    lines = data.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    # Dot-stuffed for DATA: a line starting with "." was doubled, and the end marker is absent.
    assert all(line.startswith(b"..") for line in lines if line.startswith(b"."))
    _head, body = unstuff(data).split(b"\r\n\r\n", 1)
    body_lines = [line for line in body.split(b"\r\n") if not line.startswith(b"--")]
    assert all(len(line) <= 76 for line in body_lines), max(body_lines, key=len)
    assert all(line.isascii() for line in lines)


@pytest.mark.parametrize("name", [*NAMES, "Ünïcode " * 25, "x" * 200])
def test_wire_format_is_valid(name: str) -> None:
    data = personalise(make_template(), Recipient(99, 98, "someone@example.net", name))
    check_wire_format(data)
    assert parse(data)["To"].addresses[0].addr_spec == "someone@example.net"
    if not name:
        assert b"\r\nTo: someone@example.net\r\n" in data
        return
    # The modern parser keeps the folding space between adjacent encoded words (a CPython
    # quirk; RFC 2047 6.2 drops it), so the display name is decoded the RFC way here.
    raw = re.search(rb"\r\nTo: (.*?) <someone@example.net>\r\n", data, re.S)
    assert raw is not None
    phrase = str(make_header(decode_header(raw.group(1).decode().replace("\r\n", ""))))
    if name.isascii():
        phrase = phrase[1:-1].replace('\\"', '"') if phrase.startswith('"') else phrase
    assert phrase == name.strip()


def test_random_bodies_decode_exactly() -> None:
    rng = random.Random(20240221)
    pieces = [
        *(P.slot(field) for field in FIELDS),
        "[[digest:email]]",  # what an old template, or a feed, spells: text, never a slot
        ".",
        "\n.",
        "\n",
        " ",
        "\t",
        "=",
        "ü",
        "—",
        "word",
        "x" * 90,
        "  \n",
        "<&>",
        "\r\n",
    ]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        body_html = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        name = "".join(rng.choice(["ä", "B", " ", ".", "=", "&", "<"]) for _ in range(10)).strip()
        r = Recipient(rng.randint(1, 10**9), rng.randint(1, 10**9), "r@example.com", name)
        data = personalise(make_template(text, body_html), r)
        check_wire_format(data)
        msg = parse(data)
        text_part, html_part = msg.iter_parts()
        norm = text.replace("\r\n", "\n")
        assert content(text_part) == expected(norm, r, escape=False)
        assert content(html_part) == expected(body_html.replace("\r\n", "\n"), r, escape=True)


def test_header_values_cannot_inject_headers() -> None:
    r = Recipient(1, 2, "bob@example.com", "Bob\r\nBcc: victim@example.com")
    msg = parse(personalise(make_template(), r))
    assert msg["Bcc"] is None
    assert "Bcc" in msg["To"].addresses[0].display_name


def test_round_trip_is_byte_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(message_module, "_date_header", lambda: "Wed, 21 Feb 2024 10:00:00 GMT")
    template = make_template(reply_to="editor@example.org")
    loaded = MessageTemplate.from_bytes(template.to_bytes(), signer())
    r = Recipient(5, 6, "c@example.com", "Zoë")
    assert personalise(loaded, r) == personalise(template, r)
    assert loaded.bounce_address == "bounces@example.org"
    assert parse(personalise(loaded, r))["Reply-To"] == "editor@example.org"


def test_corrupt_templates_are_refused() -> None:
    data = make_template().to_bytes()
    with pytest.raises(TemplateError):
        MessageTemplate.from_bytes(b"garbage", signer())
    with pytest.raises(TemplateError):
        MessageTemplate.from_bytes(data[:-10], signer())


def test_data_ready_dot_stuffs_a_one_off_message_and_unstuff_restores_it() -> None:
    msg = EmailMessage()
    msg["Subject"] = "Confirm"
    msg.set_content(".hidden line\n.\nthe end\n", cte="7bit")
    data = data_ready(msg)
    assert b"\r\n..hidden line\r\n..\r\nthe end\r\n" in data
    assert b"\r\n.\r\n" not in data  # a lone dot would end DATA early
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF line ends only
    assert unstuff(data) == msg.as_bytes(policy=SMTP)


def _qp_reference(value: str) -> bytes:
    """What _qp made before its fast path: the stdlib's encoder, then a soft break."""
    encoded = quoprimime.body_encode(value.encode("utf-8").decode("latin-1"), QP_LINE, "\r\n")
    data = encoded.encode("ascii")
    return data if data.endswith(b"\r\n") else data + b"=\r\n"


plain_text = st.text(alphabet=st.sampled_from(" !.-=<>~az\t\u00e9"), max_size=300)


@given(plain_text | st.text(max_size=200))
@example("x" * 75)
@example("x" * 76)
@example("x" * 149)
@example("x" * 150)
@example("https://digest.example.org/u/" + "A" * 120)
@example("Reader 12 ")
@example(".starts with a dot")
def test_qp_fast_path_is_the_stdlib_encoding(value: str) -> None:
    assert _qp(value) == _qp_reference(value)


@given(plain_text | st.text(max_size=120))
@example("")
@example(" ")
@example(".")
@example(".x")
@example("x" * 75)
@example("x" * 76)
@example("a=b")
@example("trailing ")
@example("tab\there")
@example("\x7f")
def test_body_value_fast_path_is_the_plain_encoding(value: str) -> None:
    assert _body_value(value) == _stuff(_qp(value), True)


def reference_copy(template: MessageTemplate, r: Recipient) -> bytes:
    """A copy as personalise made it before its fast paths: each value cleaned, escaped for
    the HTML, QP-encoded and dot-stuffed on its own."""

    def clean(value: str) -> str:
        return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()

    name, email = clean(r.name), clean(r.email)
    unsubscribe = template.signer.token("unsubscribe", r.subscription_id)
    values = {
        "name": name,
        "greeting_name": f" {name}" if name else "",
        "email": email,
        "unsubscribe_url": unsubscribe_url(template.public_url, unsubscribe),
        "preferences_url": preferences_url(
            template.public_url, template.signer.token("preferences", r.subscription_id)
        ),
        "unsubscribe_mailto": f"mailto:{template.unsubscribe_address}?subject=unsubscribe-"
        + unsubscribe,
        "message_id": template.message_id(r.delivery_id),
        "to": _to_header(name, r.email),
        "date": message_module._date_header(),
    }
    out = []
    for segment in template.segments:
        if isinstance(segment, bytes):
            out.append(segment)
            continue
        encoding, field = segment.split(":")
        value = values[field]
        if encoding == "h":
            out.append(value.encode())
        else:
            out.append(_stuff(_qp(html.escape(value) if encoding == "x" else value), True))
    return b"".join(out)


PUBLIC_URLS = [
    "https://digest.example.org",
    "https://digest.example.org/",
    "https://news.example.org/a&b=c/",  # escaped in the HTML, "=" encoded in both bodies
    "https://news.example.org/" + "long/" * 12,  # links past a QP line
    "https://digest-news.example.org/archive/2024",  # the prefix fits a line, a link not
    ".starts-with-a-dot.example",
]


@given(
    st.sampled_from(PUBLIC_URLS),
    st.text(max_size=40) | st.sampled_from(NAMES),
    st.sampled_from(["bob@example.com", "x@bücher.example", "a&b@example.org", ".x@example.org"]),
    st.integers(min_value=1, max_value=2**63 - 1),
    st.integers(min_value=-5, max_value=2**63 - 1),
)
@example("https://digest.example.org", "Bob", "bob@example.com", 1, 1)
def test_copies_are_those_of_the_plain_encoding(
    public_url: str, name: str, email: str, subscription_id: int, delivery_id: int
) -> None:
    """The fast paths of personalise (links built from prefixes, values that need no
    encoding, the HTML sharing the text's segment) make the very bytes of the plain one."""
    template = TEMPLATES.get(public_url) or TEMPLATES.setdefault(
        public_url, make_template(public_url=public_url)
    )
    r = Recipient(delivery_id, subscription_id, email, name)
    with pytest.MonkeyPatch.context() as mp:  # one Date for both, whatever the clock does
        mp.setattr(message_module, "_date_header", lambda: "Wed, 21 Feb 2024 10:00:00 GMT")
        try:
            expected_copy = reference_copy(template, r)
        except Exception as exc:  # a name or address no copy can carry: both refuse it
            with pytest.raises(type(exc)):
                personalise(template, r)
            return
        assert personalise(template, r) == expected_copy


TEMPLATES: dict[str, MessageTemplate] = {}
