"""Synthetic, fully filled-in reports for tests, the bench and the docs.

People use example.com addresses, 555-01xx phones and documentation IP ranges
(RFC 5737 / RFC 3849); nothing here describes any real person or content.
"""

from __future__ import annotations

import datetime as dt

from ridgeline.reports.model import (
    AccountPermanentlyDisabled,
    AccountPlatform,
    AccountTemporarilyDisabled,
    Address,
    AssociatedAccount,
    ChatImIncident,
    ContactPerson,
    Details,
    DeviceId,
    Email,
    EstimatedLocation,
    FileAnnotations,
    FileDetails,
    IncidentSummary,
    IntendedRecipient,
    InternetDetails,
    IpCaptureEvent,
    LawEnforcement,
    NameValuePair,
    OriginalFileHash,
    Person,
    PersonOrUserReported,
    Phone,
    Report,
    ReportAnnotations,
    Reporter,
    Victim,
    WebPageIncident,
)

WHEN = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)


def reporter() -> Reporter:
    return Reporter(
        reporting_person=Person(
            first_name="Riley",
            last_name="Analyst",
            emails=(Email("trust-safety@example.com", type="Work", verified=True),),
            phones=(Phone("555-0100", type="Work", country_calling_code="+1"),),
        ),
        contact_person=ContactPerson(
            first_name="Casey",
            emails=(Email("legal@example.com", type="Business"),),
        ),
        company_template="Example Platform template",
        terms_of_service="Uploading sexual content involving minors is prohibited.",
        legal_url="https://example.com/legal",
    )


def minimal_report(when: dt.datetime = WHEN) -> Report:
    """The smallest valid report: incident summary and reporter."""
    return Report(
        incident_summary=IncidentSummary(
            incident_type="Child Pornography (possession, manufacture, and distribution)",
            incident_date_time=when,
        ),
        reporter=reporter(),
    )


def rich_report(n: int = 0, when: dt.datetime = WHEN) -> Report:
    """A report with most of the schema filled in (`n` varies the identifiers)."""
    ip = IpCaptureEvent(
        ip_address=f"192.0.2.{n % 250 + 1}",
        event_name="Upload",
        date_time=when,
        possible_proxy=False,
        port=443,
    )
    return Report(
        incident_summary=IncidentSummary(
            incident_type="Child Pornography (possession, manufacture, and distribution)",
            platform="Example Platform",
            escalate_to_high_priority="Ongoing contact with a minor suspected",
            report_annotations=ReportAnnotations(csam_solicitation=True),
            incident_date_time=when,
            incident_date_time_description="Time of upload as logged by the platform",
        ),
        internet_details=(
            InternetDetails(
                web_page=WebPageIncident(
                    third_party_hosted_content=False,
                    urls=(f"https://example.com/u/{n}/post/1",),
                )
            ),
            InternetDetails(chat_im=ChatImIncident(chat_client="Example Chat", content="")),
        ),
        law_enforcement=LawEnforcement(agency_name="Example County Sheriff", case_number="C-1"),
        reporter=reporter(),
        persons_reported=(
            PersonOrUserReported(
                person=Person(
                    emails=(
                        Email(f"user{n}@example.com", type="Home", verified=True),
                        Email(f"recovery{n}@example.com", type="Recovery"),
                    ),
                    phones=(Phone("555-0142", type="Mobile", country_calling_code="+1"),),
                    addresses=(Address(type="Home", city="Springfield", state="IL", country="US"),),
                ),
                esp_identifier=f"uid-{n}",
                esp_service="Example Photos",
                screen_name=f"screen{n}",
                display_names=("Display Name",),
                profile_urls=(f"https://example.com/u/{n}",),
                ip_capture_events=(
                    ip,
                    IpCaptureEvent(ip_address="2001:db8::1", event_name="Login"),
                ),
                device_ids=(DeviceId(id_type="IMEI", id_value="490154203237518"),),
                prior_ct_reports=(4564654,),
                account_temporarily_disabled=AccountTemporarilyDisabled(
                    value=True, disabled_date=when, user_notified=False
                ),
                account_permanently_disabled=AccountPermanentlyDisabled(value=False),
                estimated_location=EstimatedLocation(
                    verified=False, city="Springfield", region="IL", country_code="US"
                ),
                all_emails_reported=True,
                associated_accounts=(
                    AssociatedAccount(
                        type="Linked",
                        platform=AccountPlatform("Example Chat", third_party_user=False),
                        screen_name=f"linked{n}",
                        emails=(Email(f"linked{n}@example.com"),),
                    ),
                ),
                additional_info="Account created two days before the upload.",
            ),
        ),
        intended_recipients=(
            IntendedRecipient(esp_identifier=f"uid-r{n}", screen_name=f"recipient{n}"),
        ),
        victims=(Victim(person=Person(age=14), esp_identifier=f"uid-v{n}"),),
        additional_info="Found by hash match against a reviewed list.",
    )


def file_details(md5: str = "0" * 32, sha256: str | None = None) -> FileDetails:
    """fileDetails for a matched file (ids filled in at filing)."""
    hashes = [OriginalFileHash(md5, hash_type="MD5")]
    if sha256:
        hashes.append(OriginalFileHash(sha256, hash_type="SHA256"))
    return FileDetails(
        original_file_name="upload.png",
        location_of_file="https://example.com/media/1",
        file_viewed_by_esp=True,
        exif_viewed_by_esp=False,
        publicly_available=False,
        file_relevance="Reported",
        file_annotations=FileAnnotations(viral=True),
        industry_classification="A1",
        original_file_hashes=tuple(hashes),
        ip_capture_event=IpCaptureEvent(ip_address="198.51.100.7", event_name="Upload"),
        device_ids=(DeviceId(id_type="IMEI", id_value="490154203237518"),),
        details=(Details(type="HASH", pairs=(NameValuePair("PDQ", "f" * 64),)),),
        additional_info=("Matched list entry 1 (industry:A1)",),
    )
