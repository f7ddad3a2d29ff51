"""Identifier normalisation (CONVENTIONS "Identifiers used for linking reports")."""

from __future__ import annotations

import datetime as dt

import pytest
from email_validator import validate_email

from ridgeline.reports import identifiers as ids
from ridgeline.reports import samples
from ridgeline.reports.model import (
    Address,
    DeviceId,
    Email,
    FileDetails,
    IpCaptureEvent,
    OriginalFileHash,
    Person,
    PersonOrUserReported,
    Phone,
    Report,
)

#: A provider table for the tests: example.net plays Gmail's part (synthetic addresses).
RULES = ids.EmailRules(
    ignore_dots=frozenset({"example.net"}),
    ignore_plus=frozenset({"example.net", "example.org"}),
    aliases={"mail.example.net": "example.net"},
)


def test_emails_lower_case_and_provider_rules() -> None:
    assert ids.normalise_email(" Jane.Doe+Photos@Example.COM ") == "jane.doe+photos@example.com"
    assert ids.normalise_email("Jane.Doe+Photos@example.net", RULES) == "janedoe@example.net"
    assert ids.normalise_email("jane.doe+x@mail.example.net", RULES) == "janedoe@example.net"
    assert ids.normalise_email("jane.doe+x@example.org", RULES) == "jane.doe@example.org"
    # The documented defaults: Gmail drops dots and tags, googlemail is the same mailbox.
    assert "gmail.com" in ids.DEFAULT_EMAIL_RULES.ignore_dots
    assert ids.DEFAULT_EMAIL_RULES.aliases["googlemail.com"] == "gmail.com"
    assert "outlook.com" in ids.DEFAULT_EMAIL_RULES.ignore_plus
    assert "example.com" not in ids.DEFAULT_EMAIL_RULES.ignore_plus
    with pytest.raises(ids.UnusableIdentifier, match="not an email address"):
        ids.normalise_email("not an address")


@pytest.mark.parametrize(
    "address",
    ["user1@example.com", "First.Last@Example.COM", "a+b.c@sub.example.org", "x_y-z@example.net"],
)
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    """Plain ASCII addresses skip email-validator; the result must be the same."""
    checked = validate_email(address, check_deliverability=False)
    assert ids.normalise_email(address) == checked.normalized.lower()


def test_internationalised_addresses_go_through_email_validator() -> None:
    assert ids.normalise_email("Jörg@Exämple.com") == "jörg@exämple.com"


def test_phones_to_e164() -> None:
    # countryCallingCode first
    assert ids.normalise_phone("20 7946 0123", calling_code="+44") == "+442079460123"
    # then the person's own address
    assert ids.normalise_phone("312-555-0142", region="US") == "+13125550142"
    assert ids.normalise_phone("(312) 555-0142", region="us") == "+13125550142"
    # a number with its own + code needs neither
    assert ids.normalise_phone("+1 312 555 0142") == "+13125550142"
    with pytest.raises(ids.UnusableIdentifier, match="countryCallingCode"):
        ids.normalise_phone("312-555-0142")


def test_ip_device_url_and_names() -> None:
    assert ids.normalise_ip(" 2001:DB8:0:0::1 ") == "2001:db8::1"
    assert ids.normalise_ip("::ffff:192.0.2.7") == "192.0.2.7"
    with pytest.raises(ids.UnusableIdentifier):
        ids.normalise_ip("192.0.2.300")
    assert ids.normalise_device(" imei ", "49-015420-323751-8") == ("IMEI", "490154203237518")
    assert ids.normalise_device("MAC", "00:1a:2b:3c:4d:5e") == ("MAC", "001A2B3C4D5E")
    assert ids.normalise_url("HTTPS://Example.COM/u/Jane/") == "https://example.com/u/Jane"
    assert ids.normalise_name("  Jane   Doe ") == "jane doe"
    assert ids.hash_kind("SHA-256") == "sha256" and ids.hash_kind("PhotoDNA") is None


def _report(person: Person, **kw: object) -> Report:
    base = samples.minimal_report()
    return Report(
        incident_summary=base.incident_summary,
        reporter=base.reporter,
        persons_reported=(PersonOrUserReported(person=person, **kw),),  # type: ignore[arg-type]
    )


def test_extract_roles_regions_times_and_warnings() -> None:
    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    person = Person(
        emails=(Email("User7@Example.com"), Email("broken")),
        phones=(Phone("312-555-0177"), Phone("20 7946 0177", country_calling_code="+44")),
        addresses=(Address(city="Springfield", state="IL", country="US"),),
    )
    report = _report(
        person,
        esp_service="Example Photos",
        screen_name="Jane_Doe",
        esp_identifier="uid-7",
        ip_capture_events=(
            IpCaptureEvent(ip_address="198.51.100.7", date_time=when),
            IpCaptureEvent(ip_address="203.0.113.9", possible_proxy=True),
        ),
        device_ids=(DeviceId(id_type="IMEI", id_value="490154203237518"),),
    )
    files = [
        FileDetails(
            original_file_hashes=(
                OriginalFileHash("D41D8CD98F00B204E9800998ECF8427E", hash_type="MD5"),
                OriginalFileHash("f" * 64, hash_type="PDQ"),
                OriginalFileHash("xyz", hash_type="SHA1"),
            )
        )
    ]
    found, warnings = ids.extract(report, files)
    got = {(i.kind, i.value, i.role) for i in found}
    assert ("email", "user7@example.com", "reported") in got
    assert ("phone", "+13125550177", "reported") in got  # region from the person's address
    assert ("phone", "+442079460177", "reported") in got  # countryCallingCode wins
    assert ("email", "trust-safety@example.com", "reporter") in got
    assert ("md5", "d41d8cd98f00b204e9800998ecf8427e", "file") in got
    assert ("pdq", "f" * 64, "file") in got
    screen = next(i for i in found if i.kind == "screen_name")
    assert (screen.service, screen.value) == ("example photos", "jane_doe")
    device = next(i for i in found if i.kind == "device")
    assert device.device_type == "IMEI"
    ips = {i.value: i for i in found if i.kind == "ip"}
    assert ips["198.51.100.7"].event_at == when and not ips["198.51.100.7"].possible_proxy
    # no own time: the incident time; the proxy flag is kept
    assert ips["203.0.113.9"].event_at == samples.WHEN and ips["203.0.113.9"].possible_proxy
    assert any("broken" in w for w in warnings) and any("SHA1" in w for w in warnings)
    assert not ids.linkable(ips["203.0.113.9"])
    assert ids.linkable(ips["198.51.100.7"])
    assert not any(ids.linkable(i) for i in found if i.role == "reporter")


def test_the_desk_written_into_the_suspect_record_is_still_the_desk() -> None:
    """A reported-person email equal to the reporter's own is left out of linking."""
    person = Person(emails=(Email("trust-safety@example.com"), Email("user9@example.com")))
    found, _ = ids.extract(_report(person))
    reported = {i.value for i in found if i.role == "reported"}
    assert reported == {"user9@example.com"}


def test_normalise_query_matches_intake() -> None:
    assert ids.normalise_query("email", "USER1@example.com") == "user1@example.com"
    assert ids.normalise_query("phone", "+1 312-555-0142") == "+13125550142"
    assert ids.normalise_query("md5", "D41D8CD98F00B204E9800998ECF8427E") == (
        "d41d8cd98f00b204e9800998ecf8427e"
    )
    with pytest.raises(ids.UnusableIdentifier, match="unknown identifier kind"):
        ids.normalise_query("name", "x")
