"""Turn a document's bytes into text, trusting its declared encoding only as far as it holds.

Order: a byte-order mark; else valid UTF-8 that has non-ASCII bytes (servers and pages that
declare latin-1 while sending UTF-8 are common, and real latin-1 text is almost never valid
UTF-8); else the declared encoding (HTTP charset, then the XML declaration or HTML meta),
read the way browsers read its label (WHATWG: latin-1 means windows-1252, GB2312 means GBK);
else, when nothing is declared, the encoding the bytes themselves show (charset-normalizer,
among windows-1252 and the legacy encodings of other scripts: Shift_JIS, EUC-JP, KOI8-R ...);
else windows-1252. A declaration that the bytes contradict falls through to the next rule.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from charset_normalizer import from_bytes

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_STARTS = (
    (b"\x00\x00\x00\x3c", "utf-32-be"),
    (b"\x3c\x00\x00\x00", "utf-32-le"),
    (b"\x00\x3c\x00\x3f", "utf-16-be"),
    (b"\x3c\x00\x3f\x00", "utf-16-le"),
)
# EBCDIC labels Python spells otherwise.
_EBCDIC_LABELS = {
    "ebcdic-cp-us": "cp037", "ebcdic-cp-ca": "cp037", "ebcdic-cp-wt": "cp037",
    "ebcdic-cp-nl": "cp037", "ebcdic-cp-be": "cp500", "ebcdic-cp-ch": "cp500",
    "csibm037": "cp037", "csibm500": "cp500", "ibm039": "cp037", "ibm1140": "cp1140",
}  # fmt: skip
# WHATWG Encoding Standard: what a label really means on the web.
_WEB_LABELS = {
    "latin1": "cp1252", "latin-1": "cp1252", "iso-8859-1": "cp1252", "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252", "l1": "cp1252",
    "iso-8859-9": "cp1254", "latin5": "cp1254", "tis-620": "cp874", "iso-8859-11": "cp874",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "chinese": "gb18030",
    "gb_2312-80": "gb18030", "shift_jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "big5": "big5hkscs",
}  # fmt: skip
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([\w.:-]+)[\"']", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
# What an undeclared document may be in, when it is not UTF-8. The Latin variants are left out
# on purpose: told apart from windows-1252 by a few accented letters, they are more often
# wrong guesses than right ones; other scripts are told apart with confidence.
_DETECTABLE = (
    "cp1252", "cp1251", "koi8_r", "koi8_u", "iso8859_5", "cp1253", "iso8859_7", "cp1255",
    "cp1256", "cp874", "cp932", "euc_jp", "iso2022_jp", "gb18030", "big5", "cp949",
)  # fmt: skip
_DETECT_BYTES = 200_000  # enough to tell, and bounded for a large page
_XML_DECL_TEXT = re.compile(r"^(\s*<\?xml[^>]*?)encoding\s*=\s*[\"'][^\"']*[\"']")


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _WEB_LABELS.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A document cannot declare a UTF-16/32 encoding in ASCII-compatible bytes and mean it.
    return None if name.startswith(("utf-16", "utf-32")) else name


def declared_encoding(content: bytes, content_type: str | None = None) -> str | None:
    """The encoding the HTTP header or the document itself names (as a Python codec)."""
    if content_type:
        match = _HTTP_CHARSET.search(content_type)
        if match and (codec := _codec(match.group(1))):
            return codec
    head = content[:4096]
    for pattern in (_XML_DECL, _META_CHARSET):
        found = pattern.search(head)
        if found and (codec := _codec(found.group(1).decode("ascii", "replace"))):
            return codec
    return None


def _xml_sniff(content: bytes) -> str | None:
    """UTF-16/32 without a BOM and EBCDIC, told by how "<?" starts (XML 1.0, appendix F)."""
    for start, codec in _XML_STARTS:
        if content.startswith(start):
            return codec
    if content.startswith(b"\x4c\x6f\xa7\x94"):  # "<?xm" in EBCDIC
        match = re.search(r"encoding\s*=\s*[\"']([\w.:-]+)", content[:200].decode("cp037"))
        label = match.group(1).lower().replace("_", "-") if match else "cp037"
        label = _EBCDIC_LABELS.get(label, label)
        try:
            return codecs.lookup(label).name
        except LookupError:
            return "cp037"
    return None


def _plausible(text: str) -> float:
    """Share of the letters that are of a script's everyday letters, not of its rare blocks
    (EUC-JP read as EUC-KR gives Hangul jamo, not syllables): breaks detection ties."""
    letters = common = 0
    for ch in text:
        if ord(ch) < 0x80 or not ch.isalpha():
            continue
        letters += 1
        name = unicodedata.name(ch, "")
        if name.startswith(("HANGUL LETTER", "HALFWIDTH", "HANGUL CHOSEONG", "HANGUL JUNGSEONG")):
            continue
        common += 1
    return common / letters if letters else 0.0


def detected_encoding(content: bytes) -> str | None:
    """The legacy encoding undeclared bytes are in, when it is not windows-1252 (else None)."""
    matches = list(from_bytes(content[:_DETECT_BYTES], cp_isolation=list(_DETECTABLE)))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least + 0.02]
    best = max(tied, key=lambda m: (_plausible(str(m)), m.coherence))
    name = codecs.lookup(best.encoding).name
    return None if name == "cp1252" else name


def decode(content: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, codec used) for a document's bytes; never raises."""
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(codec, "replace"), codec
    sniffed = _xml_sniff(content)
    if sniffed:
        return content.decode(sniffed, "replace"), sniffed
    if not content.isascii():
        try:
            return content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    declared = declared_encoding(content, content_type)
    if declared and declared != "utf-8":
        try:
            return content.decode(declared), declared
        except UnicodeDecodeError:
            pass
    if declared is None and (b"\x1b$B" in content or b"\x1b$@" in content):
        try:  # ISO-2022-JP: seven-bit, told by its escape sequences
            return content.decode("iso2022_jp"), "iso2022_jp"
        except UnicodeDecodeError:
            pass
    if declared is None and not content.isascii():
        detected = detected_encoding(content)
        if detected:
            try:
                return content.decode(detected), detected
            except UnicodeDecodeError:
                pass
    try:
        return content.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; browsers map them to C1 controls.
        return content.decode("latin-1"), "latin-1"


def as_utf8_xml(content: bytes, content_type: str | None = None) -> bytes:
    """The XML document re-encoded as UTF-8, its declaration saying so, for feedparser."""
    text, _codec_used = decode(content, content_type)
    text = _XML_DECL_TEXT.sub(r'\1encoding="utf-8"', text, count=1)
    return text.encode("utf-8")
