"""The issue's MIME message: built once with the stdlib email package, frozen into a template.

A template is a sequence of static byte segments (CRLF line ends, quoted-printable bodies,
already dot-stuffed for SMTP DATA) and slots for the per-recipient values. `personalise` fills
the slots and joins bytes: no MIME rebuild, no regex over the message per recipient.

Quoted-printable stays valid under substitution because every body segment, static chunk or
value, is encoded on its own and ends in a line break (a soft one unless the text had a hard
one), so each segment starts on a fresh line and no line grows past 76 columns.
"""

from __future__ import annotations

import html
import json
import re
import time
from email import quoprimime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate, quote

from digest import placeholders
from digest.delivery.recipient import Recipient
from digest.placeholders import Slots
from digest.subscribers.addresses import wire_address
from digest.tokens import Purpose, Signer, preferences_url, unsubscribe_url, view_online_url

MAGIC = b"digest-message-template/1\n"
# One column below RFC 2045's 76 so a segment can always end in a soft break ("=").
QP_LINE = 75

# Slot keys are "<encoding>:<field>": h = header text, t = QP text, x = QP HTML-escaped text.
# The bodies' slots are found by the render's secret marker only (digest.placeholders): the
# view-online link is the same for everyone and is filled here, the rest per recipient.
_BODY_FIELDS = frozenset(
    {
        placeholders.NAME,
        placeholders.GREETING_NAME,
        placeholders.EMAIL,
        placeholders.UNSUBSCRIBE_URL,
        placeholders.PREFERENCES_URL,
    }
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')  # RFC 5322 specials: a name with one is quoted
_HTML_SPECIAL = re.compile(r"[&<>\"']")  # what html.escape changes
_TEXT_MARKER = b"DIGESTTEXTBODYSLOT"
_HTML_MARKER = b"DIGESTHTMLBODYSLOT"

Segment = bytes | str  # bytes: static; str: a slot key


class TemplateError(ValueError):
    """The stored template is not one this code can read."""


def _clean(value: str) -> str:
    """One line, no control characters: values end up in headers."""
    if value.isascii() and value.isprintable():
        return value.strip()  # the usual name or address: no regex to run
    return _CONTROL_RE.sub(" ", value).strip()


def _one_line(value: str) -> str:
    """The issue's own header text: also no U+2028, U+0085 ... (every break splitlines()
    knows), which the email package refuses in a header rather than encode."""
    return " ".join(_clean(value).split())


# What quoted-printable leaves as it is (printable ASCII but "=", and inner spaces): most
# per-recipient values (names, addresses, links), which then need only their long lines cut.
_QP_PLAIN = re.compile(r"[ !-<>-~]*[!-<>-~]")


def _qp(value: str) -> bytes:
    """QP-encode one segment, ending on a fresh line (a soft break unless it ends in one)."""
    if _QP_PLAIN.fullmatch(value):
        # What quoprimime.body_encode makes of it, without its per-character work: lines of
        # QP_LINE - 1 characters and a soft break while more than QP_LINE are left.
        step, pos, end = QP_LINE - 1, 0, len(value)
        lines = []
        while end - pos > QP_LINE:
            lines.append(value[pos : pos + step])
            pos += step
        lines.append(value[pos:])
        return ("=\r\n".join(lines) + "=\r\n").encode("ascii")
    encoded = quoprimime.body_encode(value.encode("utf-8").decode("latin-1"), QP_LINE, "\r\n")
    data = encoded.encode("ascii")
    return data if data.endswith(b"\r\n") else data + b"=\r\n"


def _stuff(segment: bytes, at_line_start: bool) -> bytes:
    """SMTP dot-stuffing (RFC 5321 4.5.2) of one segment."""
    if at_line_start and segment.startswith(b"."):
        segment = b"." + segment
    return segment.replace(b"\n.", b"\n..")


def _body_value(value: str) -> bytes:
    """A per-recipient value as a body segment: QP-encoded, dot-stuffed, on a line of its
    own. Most (a link, an ASCII address or name) fit on one line and need no encoding: they
    are themselves and a soft break, without _qp's work."""
    if (
        0 < len(value) <= QP_LINE
        and value.isascii()
        and value.isprintable()  # ASCII and printable: " " to "~"
        and "=" not in value
        and value[0] != "."
        and value[-1] != " "
    ):
        return value.encode("ascii") + b"=\r\n"
    return _stuff(_qp(value), True)


def data_ready(message: EmailMessage, *, utf8: bool = False) -> bytes:
    """A message built with the email package as a transport takes it: CRLF, dot-stuffed.
    For the one-off messages (confirmations); an issue's copies come from its template.
    `utf8`: headers in raw UTF-8 (RFC 6532), for an address that needs SMTPUTF8."""
    return _stuff(message.as_bytes(policy=SMTPUTF8 if utf8 else SMTP), at_line_start=True)


def unstuff(data: bytes) -> bytes:
    """The RFC 5322 message from DATA-ready bytes (for a maildir, or a parser)."""
    return data.replace(b"\r\n..", b"\r\n.")


def _body_segments(body: str, escape: bool, view_url: str, slots: Slots) -> list[Segment]:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    view = html.escape(view_url) if escape else view_url
    body = slots.fill(body, {placeholders.VIEW_ONLINE_URL: view})
    encoding = "x" if escape else "t"
    segments: list[Segment] = []
    pos = 0
    for match in slots.pattern.finditer(body):
        if match.group(1) not in _BODY_FIELDS:
            continue
        if match.start() > pos:
            segments.append(_qp(body[pos : match.start()]))
        segments.append(f"{encoding}:{match.group(1)}")
        pos = match.end()
    segments.append(_qp(body[pos:]))  # the body ends in "\n", so this ends in CRLF
    return segments


def _feedback_field(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", value)[:60]


def _list_id(name: str, slug: str, domain: str) -> str:
    name = _one_line(name)
    ident = f"<{slug}.{domain}>"
    return f'"{quote(name)}" {ident}' if name and name.isascii() else ident


def build_template(
    *,
    issue_id: int,
    subject: str,
    html_body: str,
    text_body: str,
    slots: Slots,
    list_slug: str,
    list_name: str,
    from_name: str,
    from_email: str,
    public_url: str,
    signer: Signer,
    reply_to: str | None = None,
    unsubscribe_address: str | None = None,
    message_id_part: str = "",
    return_path_local: str = "bounces",
    return_path_domain: str | None = None,
    view_variant_id: int | None = None,
) -> MessageTemplate:
    """Build the issue's message once with the email package and freeze it into a template.

    `message_id_part`: this installation's random part of every Message-ID (digest.installation);
    each copy's envelope sender is `<return_path_local>+<delivery>-<mark>@<return_path_domain>`.

    `slots` is the render's (RenderedIssue.slots): only slots spelled with its marker are filled.
    `view_variant_id`: the copy is that variant's (IssueVariant), and its view-online link
    opens it rather than the issue's own rendering.
    """
    domain = from_email.rsplit("@", 1)[-1]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=_one_line(from_name), addr_spec=from_email)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = _one_line(subject)
    msg["List-Id"] = _list_id(list_name, list_slug, domain)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    # Gmail's feedback loop groups complaints by these fields (campaign:list:type:sender).
    msg["Feedback-ID"] = f"i{issue_id}:{_feedback_field(list_slug)}:digest:{domain}"
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    for marker, subtype in ((_TEXT_MARKER, "plain"), (_HTML_MARKER, "html")):
        part = MIMEPart(policy=SMTP)
        part.set_content(
            marker.decode() + "\n", subtype=subtype, charset="utf-8", cte="quoted-printable"
        )
        msg.attach(part)  # type: ignore[arg-type]  # typeshed wants EmailMessage parts
    raw = msg.as_bytes(policy=SMTP)

    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"Subject:"))
    before_text, rest = body.split(_TEXT_MARKER + b"\r\n", 1)
    between, after_html = rest.split(_HTML_MARKER + b"\r\n", 1)

    if view_variant_id is None:
        view_url = view_online_url(public_url, signer.token("view", issue_id))
    else:
        view_url = view_online_url(public_url, signer.token("variant", view_variant_id))
    segments: list[Segment] = [
        b"\r\n".join(lines[:at]) + b"\r\nDate: ",
        "h:date",
        b"\r\nMessage-ID: ",
        "h:message_id",
        b"\r\nTo: ",
        "h:to",
        b"\r\nList-Unsubscribe: <",
        "h:unsubscribe_url",
        b">, <",
        "h:unsubscribe_mailto",
        b">\r\n" + b"\r\n".join(lines[at:]) + b"\r\n\r\n" + before_text,
        *_body_segments(text_body, escape=False, view_url=view_url, slots=slots),
        between,
        *_body_segments(html_body, escape=True, view_url=view_url, slots=slots),
        after_html,
    ]
    return MessageTemplate(
        issue_id=issue_id,
        domain=domain,
        unsubscribe_address=unsubscribe_address or f"unsubscribe@{domain}",
        public_url=public_url,
        segments=_freeze(segments),
        signer=signer,
        message_id_part=message_id_part,
        return_path=f"{return_path_local}@{return_path_domain or domain}",
    )


def _freeze(segments: list[Segment]) -> list[Segment]:
    """Merge adjacent static bytes and dot-stuff them, knowing where lines start."""
    merged: list[Segment] = []
    for seg in segments:
        if isinstance(seg, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += seg
        elif seg != b"":
            merged.append(seg)
    out: list[Segment] = []
    line_start = True
    for seg in merged:
        if isinstance(seg, bytes):
            out.append(_stuff(seg, line_start))
            line_start = seg.endswith(b"\n")
        else:
            out.append(seg)
            line_start = not seg.startswith("h:")  # body values end on a fresh line
    return out


_date_cache: tuple[int, str] = (0, "")


def _date_header() -> str:
    """Date of sending, formatted at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _to_header(name: str, email: str) -> str:
    """The To field. The address as it goes on the wire (IDNA domain; a UTF-8 local part as
    is, RFC 6532, which only a relay offering SMTPUTF8 is given); the name as a quoted string
    or RFC 2047 words. Raises (AddressError, ...) for what it cannot carry: the caller fails
    that one delivery."""
    address = wire_address(email)
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        shown = f'"{quote(name)}"' if _SPECIALS.search(name) else name
        return f"{shown} <{address}>"
    # RFC 2047 words, split and folded to the line limit. A name that looks like an encoded
    # word is encoded too: readers decode one even inside quotes.
    words = Header(name, "utf-8", header_name="To").encode(linesep="\r\n")
    return f"{words} <{address}>"


class MessageTemplate:
    """An issue's frozen message; `personalise` makes one recipient's DATA-ready bytes."""

    __slots__ = (
        "_keys",
        "_mailto_prefix",
        "_parts",
        "_plain_links",
        "_preferences_prefix",
        "_purposes",
        "_slot_at",
        "_unsubscribe_prefix",
        "domain",
        "issue_id",
        "message_id_part",
        "public_url",
        "return_path_base",
        "segments",
        "signer",
        "unsubscribe_address",
    )

    def __init__(
        self,
        *,
        issue_id: int,
        domain: str,
        unsubscribe_address: str,
        public_url: str,
        segments: list[Segment],
        signer: Signer,
        message_id_part: str = "",
        return_path: str = "",
    ) -> None:
        self.issue_id = issue_id
        self.message_id_part = message_id_part
        # The plain return path (local@domain) each copy's VERP address is made from.
        self.return_path_base = return_path or f"bounces@{domain}"
        self.domain = domain
        self.unsubscribe_address = unsubscribe_address
        self.public_url = public_url
        self.segments = tuple(segments)
        self.signer = signer
        self._parts = [seg if isinstance(seg, bytes) else b"" for seg in segments]
        self._slot_at = [(i, seg) for i, seg in enumerate(segments) if isinstance(seg, str)]
        self._keys = frozenset(key for _, key in self._slot_at)
        # The tokens a copy needs, unsubscribe first; and what its links start with, only
        # the token differing (a token is URL-safe base64: nothing to escape or encode).
        self._purposes: tuple[Purpose, ...] = ("unsubscribe",)
        if self._keys & {"t:preferences_url", "x:preferences_url"}:
            self._purposes += ("preferences",)
        self._unsubscribe_prefix = unsubscribe_url(public_url, "")
        self._preferences_prefix = preferences_url(public_url, "")
        # A link is the same segment in both bodies when its prefix needs no escaping nor
        # quoted-printable encoding (the usual public URL): a token needs neither.
        self._plain_links = all(
            _body_value(prefix) == prefix.encode() + b"=\r\n" and html.escape(prefix) == prefix
            for prefix in (self._unsubscribe_prefix, self._preferences_prefix)
        )
        self._mailto_prefix = f"mailto:{unsubscribe_address}?subject=unsubscribe-"

    @property
    def bounce_address(self) -> str:
        """The plain envelope sender (proofs, which answer no delivery)."""
        return self.return_path_base

    def return_path(self, recipient: Recipient) -> str:
        """The copy's envelope sender (VERP): `local+<delivery>-<mark>@domain`, so what
        comes back names the delivery it answers, and nobody can make one up for another."""
        if recipient.delivery_id <= 0:
            return self.return_path_base
        local, _, domain = self.return_path_base.rpartition("@")
        mark = self.signer.mark(recipient.delivery_id)
        return f"{local}+{recipient.delivery_id}-{mark}@{domain}"

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery; with this installation's random part and the delivery's mark,
        it repeats in no other database and a report quoting it is known to be ours."""
        if not self.message_id_part:
            return f"<d{delivery_id}.i{self.issue_id}@{self.domain}>"  # an older template
        if delivery_id <= 0:  # a proof, which is no delivery
            return f"<d{delivery_id}.i{self.issue_id}.{self.message_id_part}@{self.domain}>"
        mark = self.signer.mark(delivery_id)
        return f"<d{delivery_id}.{mark}.i{self.issue_id}.{self.message_id_part}@{self.domain}>"

    def _link_values(self, link: str) -> tuple[bytes, bytes]:
        """A copy's link (public URL and token) as a segment of the text body and of the
        HTML body."""
        if self._plain_links:
            data = (link + "=\r\n").encode("ascii") if len(link) <= QP_LINE else _body_value(link)
            return data, data
        return _body_value(link), _body_value(html.escape(link))

    def personalise(self, recipient: Recipient) -> bytes:
        raw_name = recipient.name
        name = _clean(raw_name) if raw_name else ""
        email = _clean(recipient.email)
        tokens = self.signer.tokens(recipient.subscription_id, *self._purposes)
        unsubscribe = tokens[0]
        link = self._unsubscribe_prefix + unsubscribe
        values: dict[str, bytes] = {
            "h:date": _date_header().encode("ascii"),
            "h:message_id": self.message_id(recipient.delivery_id).encode("utf-8"),
            "h:to": _to_header(name, recipient.email).encode("utf-8"),  # checked, not cleaned
            "h:unsubscribe_url": link.encode("utf-8"),
            "h:unsubscribe_mailto": (self._mailto_prefix + unsubscribe).encode("utf-8"),
        }
        # The bodies' values: the text's, and the HTML's (escaped), which is the same
        # segment when escaping changes nothing (links and most names and addresses).
        keys = self._keys
        for field, value in (
            ("name", name),
            ("greeting_name", f" {name}" if name else ""),
            ("email", email),
        ):
            text_key, html_key = "t:" + field, "x:" + field
            if text_key in keys or html_key in keys:
                values[text_key] = data = _body_value(value)
                if _HTML_SPECIAL.search(value):
                    data = _body_value(html.escape(value))
                values[html_key] = data
        values["t:unsubscribe_url"], values["x:unsubscribe_url"] = self._link_values(link)
        if len(tokens) > 1:
            link = self._preferences_prefix + tokens[1]
            values["t:preferences_url"], values["x:preferences_url"] = self._link_values(link)
        out = self._parts.copy()
        for i, key in self._slot_at:
            out[i] = values[key]
        return b"".join(out)

    def to_bytes(self) -> bytes:
        meta = {
            "issue_id": self.issue_id,
            "domain": self.domain,
            "unsubscribe_address": self.unsubscribe_address,
            "public_url": self.public_url,
            "message_id_part": self.message_id_part,
            "return_path": self.return_path_base,
            "segments": [len(s) if isinstance(s, bytes) else s for s in self.segments],
        }
        blob = b"".join(s for s in self.segments if isinstance(s, bytes))
        return MAGIC + json.dumps(meta, separators=(",", ":")).encode() + b"\n" + blob

    @classmethod
    def from_bytes(cls, data: bytes, signer: Signer) -> MessageTemplate:
        if not data.startswith(MAGIC):
            raise TemplateError("not a digest message template (or an older format)")
        header, _, blob = data[len(MAGIC) :].partition(b"\n")
        meta = json.loads(header)
        segments: list[Segment] = []
        pos = 0
        for item in meta["segments"]:
            if isinstance(item, int):
                segments.append(blob[pos : pos + item])
                pos += item
            else:
                segments.append(str(item))
        if pos != len(blob):
            raise TemplateError("message template is truncated or corrupt")
        return cls(
            issue_id=int(meta["issue_id"]),
            domain=str(meta["domain"]),
            unsubscribe_address=str(meta["unsubscribe_address"]),
            public_url=str(meta["public_url"]),
            segments=segments,
            signer=signer,
            message_id_part=str(meta.get("message_id_part", "")),
            return_path=str(meta.get("return_path", "")),
        )


def personalise(template: MessageTemplate, recipient: Recipient) -> bytes:
    """One recipient's message, ready for SMTP DATA (dot-stuffed; ends in CRLF)."""
    return template.personalise(recipient)
