"""A list's settings as an admin edits them (page, API, CLI): each field checked on its own,
every refusal named by its field so a form can show it beside the field.

The schedule is a cron expression in the list's time zone, or one of the phrases the page
offers ("monthly 1 09:00", "weekly mon 09:00", "daily 09:00"), which are stored as cron.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from babel import Locale, UnknownLocaleError
from croniter import croniter

from digest.errors import DigestError
from digest.models import Grouping, MailingList, OptIn
from digest.subscribers.addresses import AddressError, normalise_email
from digest.subscribers.topics import clean_language, clean_timezone, parse_hhmm

NAME_MAX = 200
DESCRIPTION_MAX = 2000
SUBJECT_MAX = 300
PREHEADER_MAX = 500
CRON_MAX = 100
EDITIONS_MAX = 20
LOOKBACK_MAX = 3660
ITEMS_MAX = 500
TEMPLATE_FIELDS = ("list", "month", "count", "number")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's 0..6


class InvalidSettings(DigestError):
    """Some fields were refused: `errors` maps each to its reason (nothing was changed)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.errors.items()))


@dataclass(slots=True)
class ListSettings:
    """Every setting of a list but its slug, as plain values (what a form or a body holds)."""

    name: str = ""
    description: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    postal_address: str = ""
    language: str = "en"
    timezone: str = "UTC"
    schedule: str = "monthly 1 09:00"
    send_local_time: str = ""  # "HH:MM" in each reader's zone; "": at once
    opt_in: str = OptIn.DOUBLE.value
    grouping: str = Grouping.MONTH.value
    subject_template: str = "{list}: {month}"
    preheader_template: str = "{count} new items"
    lookback_days: int = 31
    max_items: int = 50
    auto_approve: bool = False
    private: bool = False
    editions: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, lst: MailingList) -> ListSettings:
        return cls(
            name=lst.name,
            description=lst.description or "",
            from_name=lst.from_name or "",
            from_email=lst.from_email or "",
            reply_to=lst.reply_to or "",
            postal_address=lst.postal_address or "",
            language=lst.language,
            timezone=lst.timezone,
            schedule=describe_schedule(lst.schedule_cron),
            send_local_time=lst.send_local_time or "",
            opt_in=str(lst.opt_in or OptIn.DOUBLE),
            grouping=str(lst.grouping),
            subject_template=lst.subject_template,
            preheader_template=lst.preheader_template,
            lookback_days=lst.lookback_days,
            max_items=lst.max_items,
            auto_approve=lst.auto_approve,
            private=lst.private,
            editions=list(lst.editions or ()),
        )

    def merged(self, changes: Mapping[str, Any]) -> ListSettings:
        """These settings with some fields changed; an unknown field is refused."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidSettings({name[:40]: "no such setting" for name in unknown})
        return ListSettings(**{**asdict(self), **changes})


@dataclass(frozen=True, slots=True)
class Clean:
    """Checked values, as the columns hold them."""

    name: str
    description: str
    from_name: str | None
    from_email: str | None
    reply_to: str | None
    postal_address: str
    language: str
    timezone: str
    schedule_cron: str
    send_local_time: str | None
    opt_in: OptIn
    grouping: Grouping
    subject_template: str
    preheader_template: str
    lookback_days: int
    max_items: int
    auto_approve: bool
    private: bool
    editions: list[str]


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


POSTAL_ADDRESS_MAX = 500
_POSTAL_FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean_postal_address(value: str) -> str:
    """A postal address as the footer shows it: lines of text (CRLF or CR made LF), no other
    control or bidi characters, at most POSTAL_ADDRESS_MAX characters."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.strip() for line in text.split("\n")).strip()
    if _POSTAL_FORBIDDEN.search(text):
        raise DigestError("the postal address has control or bidi characters")
    if len(text) > POSTAL_ADDRESS_MAX:
        raise DigestError(f"the postal address is longer than {POSTAL_ADDRESS_MAX} characters")
    return text


def _one_line(value: str, most: int, what: str, *, required: bool = False) -> str:
    text = unicodedata.normalize("NFC", value).strip()
    if _CONTROL.search(text):
        raise ValueError(f"the {what} has control or bidi characters")
    if required and not text:
        raise ValueError(f"give the {what}")
    if len(text) > most:
        raise ValueError(f"the {what} is longer than {most} characters")
    return text


def _text(value: str, most: int, what: str) -> str:
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if _CONTROL.sub("", text.replace("\n", "")) != text.replace("\n", ""):
        raise ValueError(f"the {what} has control or bidi characters")
    if len(text) > most:
        raise ValueError(f"the {what} is longer than {most} characters")
    return text


def _address(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    try:
        return normalise_email(text)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


def check_template(template: str, most: int, what: str) -> str:
    """A subject or preheader template: one line using only {list} {month} {count} {number},
    plainly (no attribute, index, conversion or format spec: "{list:>999999999}" would fill
    memory)."""
    text = _one_line(template, most, what, required=True)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"the {what} has a stray brace: {exc}") from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name in TEMPLATE_FIELDS and (spec or conversion):
            raise ValueError(f"the {what} writes {{{name}}} plainly, with no ':' or '!' part")
        if name not in TEMPLATE_FIELDS:
            allowed = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise ValueError(f"the {what} may use only {allowed}; not {{{name[:40]}}}")
    return text


_MONTHLY = re.compile(r"monthly (?:on )?(?:day )?(\d{1,2}) (?:at )?(\d{1,2}:\d{2})")
_WEEKLY = re.compile(r"weekly (?:on )?([a-z]{3})[a-z]* (?:at )?(\d{1,2}:\d{2})")
_DAILY = re.compile(r"daily (?:at )?(\d{1,2}:\d{2})")


def parse_schedule(value: str) -> str:
    """The cron expression of a schedule phrase or of a cron expression; ValueError with the
    reason for anything else."""
    text = " ".join(value.lower().split())
    if not text:
        raise ValueError("give a schedule, e.g. monthly 1 09:00")
    if len(text) > CRON_MAX:
        raise ValueError(f"the schedule is longer than {CRON_MAX} characters")
    if match := _MONTHLY.fullmatch(text):
        day, at = int(match[1]), parse_hhmm(match[2])
        if not 1 <= day <= 28:
            raise ValueError("the day of the month is 1 to 28 (every month has it)")
        return f"{at.minute} {at.hour} {day} * *"
    if match := _WEEKLY.fullmatch(text):
        if match[1] not in WEEKDAYS:
            raise ValueError(f"no weekday {match[1]!r}: use mon, tue, wed, thu, fri, sat, sun")
        at = parse_hhmm(match[2])
        return f"{at.minute} {at.hour} * * {WEEKDAYS.index(match[1])}"
    if match := _DAILY.fullmatch(text):
        at = parse_hhmm(match[1])
        return f"{at.minute} {at.hour} * * *"
    if text.startswith(("monthly", "weekly", "daily")):
        raise ValueError("write monthly DAY HH:MM, weekly DAY HH:MM or daily HH:MM")
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"{text[:60]!r} is neither a schedule (monthly 1 09:00, weekly mon 09:00, "
            "daily 09:00) nor a five-field cron expression"
        )
    return text


def describe_schedule(cron: str) -> str:
    """The phrase of a cron expression when it has one, else the expression."""
    parts = cron.split()
    if len(parts) == 5 and parts[0].isdigit() and parts[1].isdigit():
        at = f"{int(parts[1]):02d}:{int(parts[0]):02d}"
        day, month, weekday = parts[2:]
        if month == "*" and weekday == "*" and day.isdigit() and 1 <= int(day) <= 28:
            return f"monthly {int(day)} {at}"
        if month == "*" and day == "*" and weekday.isdigit() and 0 <= int(weekday) <= 6:
            return f"weekly {WEEKDAYS[int(weekday)]} {at}"
        if month == day == weekday == "*":
            return f"daily {at}"
    return cron


def _editions(values: Iterable[str]) -> list[str]:
    found = []
    for value in values:
        try:
            language = clean_language(value)
        except DigestError as exc:
            raise ValueError(str(exc)) from None
        if language:
            found.append(language)
    if len(found) > EDITIONS_MAX:
        raise ValueError(f"at most {EDITIONS_MAX} editions")
    return found


def _language(value: str) -> str:
    """The list's locale as given ("en", "fr", "en-GB"): dates and labels speak it."""
    tag = value.strip().replace("_", "-")
    if not tag:
        raise ValueError("give the list's language, e.g. en")
    if len(tag) > 16 or not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", tag):
        raise ValueError(f"unknown language {value[:40]!r}: write e.g. en, fr or en-GB")
    try:
        Locale.parse(tag, sep="-")
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"unknown language {value[:40]!r}: write e.g. en, fr or en-GB") from None
    return tag


def _timezone(value: str) -> str:
    try:
        zone = clean_timezone(value)
    except DigestError as exc:
        raise ValueError(str(exc)) from None
    if zone is None:
        raise ValueError("give the list's time zone, e.g. Europe/Paris or UTC")
    return zone


def _local_time(value: str) -> str | None:
    text = value.strip()
    return parse_hhmm(text).strftime("%H:%M") if text else None


def _within(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"{what} is {low} to {high}")
    return value


def _word(enum: Any, value: str, what: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{what} is one of {', '.join(m.value for m in enum)}") from None


def check_settings(values: ListSettings) -> Clean:
    """Every field checked; InvalidSettings naming each refused one."""
    errors: dict[str, str] = {}
    checks: dict[str, Any] = {
        "name": lambda: _one_line(values.name, NAME_MAX, "name", required=True),
        "description": lambda: _text(values.description, DESCRIPTION_MAX, "description"),
        "from_name": lambda: _one_line(values.from_name, NAME_MAX, "sender name") or None,
        "from_email": lambda: _address(values.from_email),
        "reply_to": lambda: _address(values.reply_to),
        "postal_address": lambda: clean_postal_address(values.postal_address),
        "language": lambda: _language(values.language),
        "timezone": lambda: _timezone(values.timezone),
        "schedule_cron": lambda: parse_schedule(values.schedule),
        "send_local_time": lambda: _local_time(values.send_local_time),
        "opt_in": lambda: _word(OptIn, values.opt_in, "the opt-in mode"),
        "grouping": lambda: _word(Grouping, values.grouping, "the grouping"),
        "subject_template": lambda: check_template(values.subject_template, SUBJECT_MAX, "subject"),
        "preheader_template": lambda: check_template(
            values.preheader_template, PREHEADER_MAX, "preheader"
        ),
        "lookback_days": lambda: _within(values.lookback_days, 1, LOOKBACK_MAX, "lookback days"),
        "max_items": lambda: _within(values.max_items, 1, ITEMS_MAX, "the most items"),
        "auto_approve": lambda: bool(values.auto_approve),
        "private": lambda: bool(values.private),
        "editions": lambda: _editions(values.editions),
    }
    clean: dict[str, Any] = {}
    for name, check in checks.items():
        try:
            clean[name] = check()
        except (ValueError, DigestError) as exc:
            # The form's field for the stored cron is "schedule".
            errors["schedule" if name == "schedule_cron" else name] = str(exc)
    if errors:
        raise InvalidSettings(errors)
    main = clean["language"]
    clean["editions"] = sorted({e for e in clean["editions"] if e != main})
    return Clean(**clean)


def apply_settings(lst: MailingList, clean: Clean) -> list[str]:
    """Set the list's columns; the names of those that changed (for the audit log)."""
    changed = []
    for name in (f.name for f in fields(Clean)):
        value = getattr(clean, name)
        if getattr(lst, name) != value:
            setattr(lst, name, value)
            changed.append(name)
    return changed
