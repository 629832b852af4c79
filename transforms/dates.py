"""Parse the date strings Indonesian news sites and feeds print, into UTC.

One public function, :func:`parse_date`, turns whatever a feed's ``pubDate``, a
page's byline or an index page shows into a timezone-aware UTC ``datetime``, or
``None`` when the text holds no usable date. It never raises: dates come from
untrusted pages and a bad one must not cost us the article.

Why hand-written rather than ``dateparser``: the forms we meet are few and
regular, ``dateparser`` is ~100x slower per call (it matters when the whole
headline corpus is re-parsed) and misses local abbreviations (``Agt``, ``Nop``,
``Peb``) and the WIB/WITA/WIT zones. The standard library still does the
standard formats (``datetime.fromisoformat`` for ISO 8601).

Recognised, in the order tried:

1. relative forms measured from ``now``: ``baru saja``, ``5 menit yang lalu``,
   ``2 jam lalu``, ``sejam lalu``, ``1 hari lalu``, ``3 minggu lalu`` and the
   English ``2 hours ago``; ``kemarin`` / ``hari ini`` (optionally with a time);
2. Unix epoch seconds (10 digits) or milliseconds (13 digits);
3. ISO 8601 via ``datetime.fromisoformat`` (``2024-06-19``, ``2024-06-19T15:30:00+07:00``);
4. a general scan for a calendar date -- ``19 Juni 2024``, ``19 Jun 24``,
   ``June 19, 2024``, ``19/06/2024`` (day first, the Indonesian order) or
   ``2024/06/19`` -- plus an optional time (``15:30``, ``15.30``,
   ``pukul 15.30``, ``3:30 PM``) and zone (``WIB``, ``WITA``, ``WIT``, ``GMT``,
   ``UTC``, ``Z``, ``+0700``, ``+07:00``, ``GMT+7``, US zone names from
   RFC 822). RFC 822/2822 strings are a special case of this form; day names
   (``Rabu,``/``Wed,``) are ignored.

A date without a time of day means 00:00 in ``default_tz`` (WIB unless told
otherwise); a time without a zone is taken in ``default_tz`` too.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

log = logging.getLogger(__name__)

WIB = timezone(timedelta(hours=7), "WIB")  # Western Indonesia: Java, Sumatra, West/Central Kalimantan
WITA = timezone(timedelta(hours=8), "WITA")  # Central: Bali, Nusa Tenggara, Sulawesi, East/South Kalimantan
WIT = timezone(timedelta(hours=9), "WIT")  # Eastern: Maluku, Papua

__all__ = ["MONTHS", "WIB", "WIT", "WITA", "parse_date"]

# Month names and abbreviations, Indonesian and English (lower case).
MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "januari jan january",
        "februari pebruari feb peb february",
        "maret mar march",
        "april apr",
        "mei may",
        "juni jun june",
        "juli jul july",
        "agustus agu agt agust ags aug august",
        "september sep sept",
        "oktober okt oct october",
        "november nopember nov nop",
        "desember des dec december",
    ),
    start=1,
):
    for _name in _names.split():
        MONTHS[_name] = _number

_ZONES: dict[str, tzinfo] = {
    "wib": WIB,
    "wita": WITA,
    "wit": WIT,
    "gmt": UTC,
    "utc": UTC,
    "ut": UTC,
    "z": UTC,
    # the zone names RFC 822 allows
    "est": timezone(timedelta(hours=-5)),
    "edt": timezone(timedelta(hours=-4)),
    "cst": timezone(timedelta(hours=-6)),
    "cdt": timezone(timedelta(hours=-5)),
    "mst": timezone(timedelta(hours=-7)),
    "mdt": timezone(timedelta(hours=-6)),
    "pst": timezone(timedelta(hours=-8)),
    "pdt": timezone(timedelta(hours=-7)),
}

_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_SEP = r"[\s,./\-]*"
# "19 Juni 2024", "19-Jun-24", "01 Des. 2022"
_DMY_NAME = re.compile(
    rf"(?<!\d)(\d{{1,2}}){_SEP}({_MONTH_RE})\b\.?{_SEP}(\d{{4}}|\d{{2}})(?![\d:])", re.IGNORECASE
)
# "June 19, 2024"
_MDY_NAME = re.compile(
    rf"\b({_MONTH_RE})\b\.?{_SEP}(\d{{1,2}})(?:st|nd|rd|th)?{_SEP}(\d{{4}})(?!\d)", re.IGNORECASE
)
# "2024-06-19", "2024/6/19"
_YMD_NUM = re.compile(r"(?<!\d)(\d{4})([/\-.])(\d{1,2})\2(\d{1,2})(?!\d)")
# "19/06/2024", "19-06-2024", "19.06.2024" (day first, as Indonesians write it)
_DMY_NUM = re.compile(r"(?<!\d)(\d{1,2})([/\-.])(\d{1,2})\2(\d{4})(?!\d)")
_TIME = re.compile(
    r"(?<![\d.:])(\d{1,2})[:.](\d{2})(?:[:.](\d{2})(?:[.,]\d+)?)?(?![\d])\s*(am|pm|a\.m\.|p\.m\.)?",
    re.IGNORECASE,
)
_ZONE_NAME = re.compile(r"\b(" + "|".join(sorted(_ZONES, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_OFFSET_AFTER_TIME = re.compile(r"\d(?:\s*(?:gmt|utc))?\s*([+-])(\d{2}):?(\d{2})(?!\d)", re.IGNORECASE)
_GMT_OFFSET = re.compile(r"\b(?:gmt|utc)\s*([+-])(\d{1,2})(?::?(\d{2}))?(?!\d)", re.IGNORECASE)

_UNITS = {
    "detik": timedelta(seconds=1),
    "menit": timedelta(minutes=1),
    "jam": timedelta(hours=1),
    "hari": timedelta(days=1),
    "minggu": timedelta(weeks=1),
    "pekan": timedelta(weeks=1),
    "bulan": timedelta(days=30),
    "tahun": timedelta(days=365),
    "second": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=30),
    "year": timedelta(days=365),
}
_RELATIVE_ID = re.compile(
    r"^(\d+|se|satu)\s*(detik|menit|jam|hari|minggu|pekan|bulan|tahun)\s+(?:yang\s+)?(?:lalu|silam)$"
)
_RELATIVE_EN = re.compile(r"^(\d+|an?|one)\s+(second|sec|minute|min|hour|day|week|month|year)s?\s+ago$")
_JUST_NOW = re.compile(r"^(?:baru saja|barusan|just now|sekarang|now)$")
_DAY_WORDS = {"hari ini": 0, "today": 0, "kemarin": 1, "kemaren": 1, "yesterday": 1}
_DAY_WORD = re.compile(r"^(hari ini|today|kemarin|kemaren|yesterday)\b")


def parse_date(text: str, *, now: datetime | None = None, default_tz: tzinfo = WIB) -> datetime | None:
    """Return the date in ``text`` as an aware UTC datetime, or ``None``; never raises."""
    try:
        return _parse(text, now=now, default_tz=default_tz)
    except Exception as exc:  # noqa: BLE001 -- untrusted input: any failure means "no date"
        log.debug("unparseable date %r: %s", text[:80] if isinstance(text, str) else text, exc)
        return None


def _parse(text: str, *, now: datetime | None, default_tz: tzinfo) -> datetime | None:
    if not isinstance(text, str):
        return None
    s = " ".join(text.split())[:200]
    if not s:
        return None
    low = s.lower()
    relative = _parse_relative(low, now=now, default_tz=default_tz)
    if relative is not None:
        return relative
    if low.isdigit() and len(low) in (10, 13):
        seconds = int(low) / (1000 if len(low) == 13 else 1)
        return datetime.fromtimestamp(seconds, UTC)
    if low[:4].isdigit() and len(low) >= 8:
        iso = _parse_iso(s, default_tz=default_tz)
        if iso is not None:
            return iso
    return _parse_general(s, default_tz=default_tz)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def _parse_relative(low: str, *, now: datetime | None, default_tz: tzinfo) -> datetime | None:
    low = low.strip(" .")
    if _JUST_NOW.match(low):
        return _now(now)
    m = _RELATIVE_ID.match(low) or _RELATIVE_EN.match(low)
    if m:
        count = int(m.group(1)) if m.group(1).isdigit() else 1
        return _now(now) - count * _UNITS[m.group(2)]
    m = _DAY_WORD.match(low)
    if m:
        days_back = _DAY_WORDS[m.group(1)]
        rest = low[m.end() :]
        zone = _find_zone(rest, default_tz)
        local_day = _now(now).astimezone(zone).date() - timedelta(days=days_back)
        clock = _find_time(rest) or time(0, 0)
        return _combine(local_day, clock, zone)
    return None


def _parse_iso(s: str, *, default_tz: tzinfo) -> datetime | None:
    candidate = s.strip()
    if candidate[-1:] in "zZ":
        candidate = candidate[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    return value.astimezone(UTC)


def _parse_general(s: str, *, default_tz: tzinfo) -> datetime | None:
    found = _find_calendar_date(s)
    if found is None:
        return None
    day, start, end = found
    rest = s[:start] + " " + s[end:]
    clock = _find_time(rest)
    zone = _find_zone(rest, default_tz) if clock is not None else _find_zone_name(rest, default_tz)
    return _combine(day, clock or time(0, 0), zone)


def _find_calendar_date(s: str) -> tuple[date, int, int] | None:
    m = _DMY_NAME.search(s)
    if m:
        return _date(_year(m.group(3)), MONTHS[m.group(2).lower()], int(m.group(1))), m.start(), m.end()
    m = _MDY_NAME.search(s)
    if m:
        return _date(int(m.group(3)), MONTHS[m.group(1).lower()], int(m.group(2))), m.start(), m.end()
    m = _YMD_NUM.search(s)
    if m:
        return _date(int(m.group(1)), int(m.group(3)), int(m.group(4))), m.start(), m.end()
    m = _DMY_NUM.search(s)
    if m:
        return _date(int(m.group(4)), int(m.group(3)), int(m.group(1))), m.start(), m.end()
    return None


def _date(year: int, month: int, day: int) -> date:
    return date(year, month, day)  # ValueError on impossible dates, caught by parse_date


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:  # RFC 822 two-digit years
        year += 2000 if year < 70 else 1900
    return year


def _find_time(s: str) -> time | None:
    for m in _TIME.finditer(s):
        hour, minute = int(m.group(1)), int(m.group(2))
        second = int(m.group(3) or 0)
        meridiem = (m.group(4) or "").lower().replace(".", "")
        if meridiem and 1 <= hour <= 12:
            hour = hour % 12 + (12 if meridiem == "pm" else 0)
        if hour < 24 and minute < 60 and second < 60:
            return time(hour, minute, second)
    return None


def _find_zone_name(s: str, default_tz: tzinfo) -> tzinfo:
    m = _ZONE_NAME.search(s)
    return _ZONES[m.group(1).lower()] if m else default_tz


def _find_zone(s: str, default_tz: tzinfo) -> tzinfo:
    """The zone written after the time: numeric offset first, then a zone name."""
    m = _GMT_OFFSET.search(s) or _OFFSET_AFTER_TIME.search(s)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        if minutes <= 14 * 60:
            return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    return _find_zone_name(s, default_tz)


def _combine(day: date, clock: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
