"""Tests for transforms.dates.parse_date: fixed cases, properties, and the shared headline corpus."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.dates import WIB, WIT, WITA, parse_date

NOW = datetime(2024, 6, 19, 10, 0, tzinfo=UTC)  # 17:00 WIB
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HEADLINES = SHARED / "data" / "corpus" / "headlines_dec2022.jsonl.gz"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Indonesian long forms, with zones
        ("Rabu, 19 Juni 2024 15:30 WIB", utc(2024, 6, 19, 8, 30)),
        ("Rabu, 19 Juni 2024 15:30 WITA", utc(2024, 6, 19, 7, 30)),
        ("Rabu, 19 Juni 2024 15:30 WIT", utc(2024, 6, 19, 6, 30)),
        ("Kamis, 20 Juni 2024 pukul 15.30 WIB", utc(2024, 6, 20, 8, 30)),
        ("Jum'at, 12 Peb 2021 | 09:15 WIB", utc(2021, 2, 12, 2, 15)),
        ("Senin, 03/06/2024 07:05 WIB", utc(2024, 6, 3, 0, 5)),
        ("Selasa, 01 Des 2022 - 23:59", utc(2022, 12, 1, 16, 59)),
        ("19 Juni 2024, 15:30:45", utc(2024, 6, 19, 8, 30, 45)),
        # date only -> 00:00 WIB
        ("19 Jun 2024", utc(2024, 6, 18, 17, 0)),
        ("01 Des 2022", utc(2022, 11, 30, 17, 0)),
        ("1 Desember 2022", utc(2022, 11, 30, 17, 0)),
        ("5 Agt 2023", utc(2023, 8, 4, 17, 0)),
        ("5 Agu 2023", utc(2023, 8, 4, 17, 0)),
        ("5 Agust 2023", utc(2023, 8, 4, 17, 0)),
        ("5 Agustus 2023", utc(2023, 8, 4, 17, 0)),
        ("3 Nop 2021", utc(2021, 11, 2, 17, 0)),
        ("3 Nopember 2021", utc(2021, 11, 2, 17, 0)),
        ("10 Okt 2020", utc(2020, 10, 9, 17, 0)),
        ("10 Mei 2020", utc(2020, 5, 9, 17, 0)),
        ("2 Pebruari 2020", utc(2020, 2, 1, 17, 0)),
        ("Minggu, 7 Jan. 2024", utc(2024, 1, 6, 17, 0)),
        ("19/06/2024", utc(2024, 6, 18, 17, 0)),
        ("2024/06/19", utc(2024, 6, 18, 17, 0)),
        # RFC 822 / 2822
        ("Wed, 19 Jun 2024 15:30:00 +0700", utc(2024, 6, 19, 8, 30)),
        ("Wed, 19 Jun 2024 08:30:00 GMT", utc(2024, 6, 19, 8, 30)),
        ("Wed, 19 Jun 2024 08:30:00 -0000", utc(2024, 6, 19, 8, 30)),
        ("Mon, 02 Jan 06 15:04:05 -0700", utc(2006, 1, 2, 22, 4, 5)),
        ("Mon, 02 Jan 2006 15:04:05 EST", utc(2006, 1, 2, 20, 4, 5)),
        ("Rabu, 19 Jun 2024 15:30:00 +0800", utc(2024, 6, 19, 7, 30)),
        # ISO 8601
        ("2024-06-19T15:30:00+07:00", utc(2024, 6, 19, 8, 30)),
        ("2024-06-19T08:30:00Z", utc(2024, 6, 19, 8, 30)),
        ("2024-06-19T08:30:00.123456Z", datetime(2024, 6, 19, 8, 30, 0, 123456, tzinfo=UTC)),
        ("2024-06-19 15:30:00", utc(2024, 6, 19, 8, 30)),
        ("2024-06-19 15:30 WITA", utc(2024, 6, 19, 7, 30)),
        ("2024-06-19", utc(2024, 6, 18, 17, 0)),
        # English
        ("June 19, 2024 3:30 PM", utc(2024, 6, 19, 8, 30)),
        ("19 June 2024 12:05 AM GMT+8", utc(2024, 6, 18, 16, 5)),
        # epoch
        ("1718791800", utc(2024, 6, 19, 10, 10)),
        ("1718791800000", utc(2024, 6, 19, 10, 10)),
    ],
)
def test_absolute_forms(text: str, expected: datetime) -> None:
    got = parse_date(text, now=NOW)
    assert got == expected
    assert got is not None and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("baru saja", NOW),
        ("Baru Saja", NOW),
        ("just now", NOW),
        ("5 menit yang lalu", NOW - timedelta(minutes=5)),
        ("2 jam lalu", NOW - timedelta(hours=2)),
        ("sejam lalu", NOW - timedelta(hours=1)),
        ("30 detik lalu", NOW - timedelta(seconds=30)),
        ("1 hari lalu", NOW - timedelta(days=1)),
        ("3 hari yang lalu", NOW - timedelta(days=3)),
        ("2 minggu lalu", NOW - timedelta(weeks=2)),
        ("1 pekan lalu", NOW - timedelta(weeks=1)),
        ("4 hours ago", NOW - timedelta(hours=4)),
        ("an hour ago", NOW - timedelta(hours=1)),
        # kemarin / hari ini: the calendar day in WIB (NOW is 17:00 WIB on 19 June)
        ("kemarin", utc(2024, 6, 17, 17, 0)),
        ("Kemarin, 15:30 WIB", utc(2024, 6, 18, 8, 30)),
        ("kemarin pukul 15.30 WIT", utc(2024, 6, 18, 6, 30)),
        ("hari ini 07:00", utc(2024, 6, 19, 0, 0)),
        ("yesterday", utc(2024, 6, 17, 17, 0)),
    ],
)
def test_relative_forms(text: str, expected: datetime) -> None:
    assert parse_date(text, now=NOW) == expected


def test_naive_now_is_taken_as_utc() -> None:
    assert parse_date("2 jam lalu", now=datetime(2024, 6, 19, 10, 0)) == utc(2024, 6, 19, 8, 0)


def test_relative_defaults_to_current_time() -> None:
    got = parse_date("baru saja")
    assert got is not None
    assert abs((got - datetime.now(UTC)).total_seconds()) < 5


def test_default_tz_applies_to_dates_without_zone() -> None:
    assert parse_date("19 Juni 2024", default_tz=WITA) == utc(2024, 6, 18, 16, 0)
    assert parse_date("19 Juni 2024 10:00", default_tz=UTC) == utc(2024, 6, 19, 10, 0)
    # an explicit zone wins over default_tz
    assert parse_date("19 Juni 2024 10:00 WIT", default_tz=UTC) == utc(2024, 6, 19, 1, 0)


def test_zone_constants() -> None:
    assert WIB.utcoffset(None) == timedelta(hours=7)
    assert WITA.utcoffset(None) == timedelta(hours=8)
    assert WIT.utcoffset(None) == timedelta(hours=9)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "tidak ada tanggal",
        "31 Feb 2024",
        "2024-13-45",
        "19 Juni",  # no year
        "15:30 WIB",  # time without date
        "99/99/9999",
        "\x00\x01\x02",
        "Rabu, 19 Foo 2024",
    ],
)
def test_no_date(text: str) -> None:
    assert parse_date(text, now=NOW) is None


def test_non_string_input_returns_none() -> None:
    assert parse_date(None) is None  # type: ignore[arg-type]
    assert parse_date(12345) is None  # type: ignore[arg-type]


@given(st.text(max_size=300))
@settings(max_examples=400, deadline=None)
def test_never_raises_on_arbitrary_text(text: str) -> None:
    got = parse_date(text, now=NOW)
    assert got is None or got.utcoffset() == timedelta(0)


_MONTH_FORMS = {
    1: ["Januari", "Jan"],
    2: ["Februari", "Feb", "Peb", "Pebruari"],
    3: ["Maret", "Mar"],
    4: ["April", "Apr"],
    5: ["Mei"],
    6: ["Juni", "Jun"],
    7: ["Juli", "Jul"],
    8: ["Agustus", "Agu", "Agt", "Agust"],
    9: ["September", "Sep", "Sept"],
    10: ["Oktober", "Okt"],
    11: ["November", "Nov", "Nop", "Nopember"],
    12: ["Desember", "Des"],
}
_DAY_NAMES = ["Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"]
_ZONE_FORMS = [("WIB", WIB), ("WITA", WITA), ("WIT", WIT)]


@st.composite
def indonesian_dates(draw: st.DrawFn) -> tuple[str, datetime]:
    day = draw(st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31)))
    month = draw(st.sampled_from(_MONTH_FORMS[day.month]))
    zone_name, zone = draw(st.sampled_from(_ZONE_FORMS))
    hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    day_text = draw(st.sampled_from([str(day.day), f"{day.day:02d}"]))
    text = f"{day_text} {month} {day.year}"
    if draw(st.booleans()):
        text = f"{_DAY_NAMES[day.weekday()]}, {text}"
    with_time = draw(st.booleans())
    if with_time:
        clock = draw(
            st.sampled_from(
                [f"{hour:02d}:{minute:02d}", f"{hour:02d}.{minute:02d}", f"pukul {hour}.{minute:02d}"]
            )
        )
        sep = draw(st.sampled_from([" ", " - ", " | ", ", "]))
        text = f"{text}{sep}{clock} {zone_name}"
        expected = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    else:
        expected = datetime(day.year, day.month, day.day, tzinfo=WIB)
    return text, expected.astimezone(UTC)


@given(indonesian_dates())
@settings(max_examples=500, deadline=None)
def test_round_trip_generated_indonesian_dates(case: tuple[str, datetime]) -> None:
    text, expected = case
    assert parse_date(text, now=NOW) == expected


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)), st.integers(-12, 14))
@settings(max_examples=300, deadline=None)
def test_round_trip_rfc2822_and_iso(moment: datetime, offset_hours: int) -> None:
    from email.utils import format_datetime

    aware = moment.replace(microsecond=0, tzinfo=timezone(timedelta(hours=offset_hours)))
    assert parse_date(format_datetime(aware)) == aware.astimezone(UTC)
    assert parse_date(aware.isoformat()) == aware.astimezone(UTC)


def test_headline_corpus_agreement() -> None:
    """parse_date(date_raw), read as a WIB calendar day, equals the dataset's own `date` on every row."""
    if not HEADLINES.exists():
        pytest.skip("../shared/data/corpus/headlines_dec2022.jsonl.gz absent: corpus agreement not measured")
    total = agree = 0
    disagreements: list[tuple[str, str, datetime | None]] = []
    with gzip.open(HEADLINES, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            total += 1
            got = parse_date(row["date_raw"])
            if got is not None and got.astimezone(WIB).date().isoformat() == row["date"]:
                agree += 1
            elif len(disagreements) < 10:
                disagreements.append((row["date_raw"], row["date"], got))
    assert total == 101_038
    assert agree == total, f"{agree}/{total} agree; first disagreements: {disagreements}"
