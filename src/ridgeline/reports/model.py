"""The public CyberTipline report schema as typed, frozen objects (SPEC.md sections 4-5).

Field order is the schema's element order; metadata names each field's XML element or
attribute and its rules (see `schema.py`). Every field is optional at the type level,
so an incomplete draft can be stored and its problems listed; `validate.py` says what
is missing before anything is sent.
"""

# ruff: noqa: RUF009, SIM905
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from ridgeline.reports.schema import Node, attr, el, flag, many, text

INCIDENT_TYPES = (
    "Child Pornography (possession, manufacture, and distribution)",
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    "Online Enticement of Children for Sexual Acts",
    "Unsolicited Obscene Material Sent to a Child",
)
ADDRESS_TYPES = ("Home", "Business", "Billing", "Shipping", "Technical")
EMAIL_TYPES = ("Home", "Work", "Business", "Recovery")
PHONE_TYPES = ("Mobile", "Home", "Business", "Work", "Fax", "Internet", "Recovery")
EVENT_NAMES = ("Login", "Registration", "Purchase", "Upload", "Other", "Unknown")
ACCOUNT_TYPES = ("Billing", "Linked", "Business", "Creator", "Parent/Guardian", "Other")
BATCH_REASONS = ("VIRAL_POTENTIAL_MEME",)
FILE_RELEVANCE = ("Reported", "Supplemental Reported")
INDUSTRY_CLASSIFICATIONS = ("A1", "A2", "B1", "B2")
DETAILS_TYPES = ("EXIF", "HASH")
US_STATES = tuple(
    (
        "AL AK AS AZ AR CA CO CT DE DC FM FL GA GU HI ID IL IN IA KS KY LA ME MH MD MA MI MN "
        "MS MO MT NE NV NH NJ NM NY NC ND MP OH OK OR PW PA PR RI SC SD TN TX UT VT VI VA WA "
        "WV WI WY AA AE AP "
    ).split()
)
#: ISO 3166-1 alpha-2 plus the extra codes the schema allows.
COUNTRIES = (
    *(
        "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN "
        "BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ "
        "DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL "
        "GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM "
        "JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME "
        "MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP "
        "NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD "
        "SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO "
        "TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW A1 A2 O1 "
        "EU XK FX AN AP "
    ).split(),
    "",
)

#: Lengths documented by NCMEC (SPEC.md section 6).
MAX_TEXT = 3000
CALLING_CODE = r"\+[0-9]{1,3}"
DIGITS = r"[0-9]+"


# ---------------------------------------------------------------- shared types


@dataclass(frozen=True, slots=True)
class Address(Node):
    type: str | None = attr("type", enum=ADDRESS_TYPES)
    address: str | None = el("address")
    city: str | None = el("city")
    zip_code: str | None = el("zipCode")
    state: str | None = el("state", enum=US_STATES, hint="a US state code")
    non_usa_state: str | None = el("nonUsaState")
    country: str | None = el("country", enum=COUNTRIES, hint="an ISO 3166 country code")


@dataclass(frozen=True, slots=True)
class Email(Node):
    value: str | None = text(required=True, hint="the email address")
    type: str | None = attr("type", enum=EMAIL_TYPES)
    verified: bool | None = attr("verified")
    verification_date: dt.datetime | None = attr("verificationDate")


@dataclass(frozen=True, slots=True)
class Phone(Node):
    value: str | None = text(required=True, hint="the phone number")
    type: str | None = attr("type", enum=PHONE_TYPES)
    verified: bool | None = attr("verified")
    verification_date: dt.datetime | None = attr("verificationDate")
    country_calling_code: str | None = attr(
        "countryCallingCode", pattern=CALLING_CODE, hint="'+' and 1 to 3 digits, e.g. +1"
    )
    extension: str | None = attr("extension", pattern=DIGITS, hint="digits only")


@dataclass(frozen=True, slots=True)
class Person(Node):
    first_name: str | None = el("firstName")
    last_name: str | None = el("lastName")
    phones: tuple[Phone, ...] = many("phone")
    emails: tuple[Email, ...] = many("email")
    addresses: tuple[Address, ...] = many("address")
    age: int | None = el("age")
    date_of_birth: dt.date | None = el("dateOfBirth")


@dataclass(frozen=True, slots=True)
class ContactPerson(Node):
    first_name: str | None = el("firstName")
    last_name: str | None = el("lastName")
    phones: tuple[Phone, ...] = many("phone")
    emails: tuple[Email, ...] = many("email")
    addresses: tuple[Address, ...] = many("address")


@dataclass(frozen=True, slots=True)
class IpCaptureEvent(Node):
    ip_address: str | None = el("ipAddress", required=True, hint="the IP address")
    event_name: str | None = el("eventName", enum=EVENT_NAMES)
    date_time: dt.datetime | None = el("dateTime")
    possible_proxy: bool | None = el("possibleProxy")
    port: int | None = el("port")


@dataclass(frozen=True, slots=True)
class DeviceId(Node):
    id_type: str | None = el("idType", required=True, hint="the device id type (IMEI, ...)")
    id_value: str | None = el("idValue", required=True, hint="the device id value")
    event_name: str | None = el("eventName", enum=EVENT_NAMES)
    date_time: dt.datetime | None = el("dateTime")


@dataclass(frozen=True, slots=True)
class EstimatedLocation(Node):
    verified: bool | None = attr("verified")
    timestamp: dt.datetime | None = attr("timestamp")
    city: str | None = el("city")
    region: str | None = el("region")
    country_code: str | None = el("countryCode", enum=COUNTRIES, hint="an ISO 3166 country code")


@dataclass(frozen=True, slots=True)
class AccountTemporarilyDisabled(Node):
    value: bool | None = text(required=True, hint="whether the account was disabled")
    disabled_date: dt.datetime | None = attr("disabledDate")
    user_notified: bool | None = attr("userNotified")
    user_notified_date: dt.datetime | None = attr("userNotifiedDate")
    reenabled_date: dt.datetime | None = attr("reenabledDate")


@dataclass(frozen=True, slots=True)
class AccountPermanentlyDisabled(Node):
    value: bool | None = text(required=True, hint="whether the account was disabled")
    disabled_date: dt.datetime | None = attr("disabledDate")
    user_notified: bool | None = attr("userNotified")
    user_notified_date: dt.datetime | None = attr("userNotifiedDate")


@dataclass(frozen=True, slots=True)
class AccountPlatform(Node):
    value: str | None = text()
    third_party_user: bool | None = attr("thirdPartyUser")


@dataclass(frozen=True, slots=True)
class AssociatedAccount(Node):
    type: str | None = attr("type", required=True, enum=ACCOUNT_TYPES, hint="the account type")
    platform: AccountPlatform | None = el("platform")
    first_name: str | None = el("firstName")
    middle_name: str | None = el("middleName")
    last_name: str | None = el("lastName")
    approximate_age: int | None = el("approximateAge")
    date_of_birth: dt.date | None = el("dateOfBirth")
    phones: tuple[Phone, ...] = many("phone")
    emails: tuple[Email, ...] = many("email")
    all_emails_reported: bool | None = el("allEmailsReported")
    addresses: tuple[Address, ...] = many("address")
    esp_service: str | None = el("espService")
    esp_identifier: str | None = el("espIdentifier")
    profile_urls: tuple[str, ...] = many("profileUrl")
    screen_name: str | None = el("screenName")
    display_names: tuple[str, ...] = many("displayName")
    profile_bio: str | None = el("profileBio")
    group_identifier: str | None = el("groupIdentifier")
    compromised_account: bool | None = el("compromisedAccount")
    account_temporarily_disabled: AccountTemporarilyDisabled | None = el(
        "accountTemporarilyDisabled"
    )
    account_permanently_disabled: AccountPermanentlyDisabled | None = el(
        "accountPermanentlyDisabled"
    )
    ip_capture_events: tuple[IpCaptureEvent, ...] = many("ipCaptureEvent")
    device_ids: tuple[DeviceId, ...] = many("deviceId")
    prior_ct_reports: tuple[int, ...] = many("priorCTReport")
    additional_info: str | None = el("additionalInfo")


# ---------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class BatchedReport(Node):
    reason: str | None = attr("reason", required=True, enum=BATCH_REASONS, hint="the reason")


@dataclass(frozen=True, slots=True)
class ReportAnnotations(Node):
    ANY_ORDER: ClassVar[bool] = True
    sextortion: bool = flag("sextortion")
    csam_solicitation: bool = flag("csamSolicitation")
    minor_to_minor_interaction: bool = flag("minorToMinorInteraction")
    spam: bool = flag("spam")
    sadistic_online_exploitation: bool = flag("sadisticOnlineExploitation")


@dataclass(frozen=True, slots=True)
class IncidentSummary(Node):
    incident_type: str | None = el(
        "incidentType", required=True, enum=INCIDENT_TYPES, hint="the incident type"
    )
    platform: str | None = el("platform")
    escalate_to_high_priority: str | None = el(
        "escalateToHighPriority", nonblank=True, max_len=MAX_TEXT, hint="the escalation reason"
    )
    report_annotations: ReportAnnotations | None = el("reportAnnotations")
    incident_date_time: dt.datetime | None = el(
        "incidentDateTime", required=True, hint="the incident date and time"
    )
    incident_date_time_description: str | None = el(
        "incidentDateTimeDescription", max_len=MAX_TEXT, hint="the incident time description"
    )


@dataclass(frozen=True, slots=True)
class WebPageIncident(Node):
    third_party_hosted_content: bool | None = attr("thirdPartyHostedContent")
    urls: tuple[str, ...] = many("url")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class EmailIncident(Node):
    email_addresses: tuple[Email, ...] = many("emailAddress")
    content: str | None = el("content")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class NewsgroupIncident(Node):
    name: str | None = el("name")
    email_addresses: tuple[Email, ...] = many("emailAddress")
    content: str | None = el("content")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class ChatImIncident(Node):
    chat_client: str | None = el("chatClient")
    chat_room_name: str | None = el("chatRoomName")
    content: str | None = el("content")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class OnlineGamingIncident(Node):
    game_name: str | None = el("gameName")
    console: str | None = el("console")
    content: str | None = el("content")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class CellPhoneIncident(Node):
    phone_number: Phone | None = el("phoneNumber")
    latitude: float | None = el("latitude")
    longitude: float | None = el("longitude")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class NonInternetIncident(Node):
    location_name: str | None = el("locationName")
    incident_addresses: tuple[Address, ...] = many("incidentAddress")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class Peer2PeerIncident(Node):
    client: str | None = el("client")
    ip_capture_events: tuple[IpCaptureEvent, ...] = many("ipCaptureEvent")
    file_names: str | None = el("fileNames")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class InternetDetails(Node):
    """Exactly one variant; repeat internetDetails for several."""

    CHOICE: ClassVar[bool] = True
    web_page: WebPageIncident | None = el("webPageIncident")
    email: EmailIncident | None = el("emailIncident")
    newsgroup: NewsgroupIncident | None = el("newsgroupIncident")
    chat_im: ChatImIncident | None = el("chatImIncident")
    online_gaming: OnlineGamingIncident | None = el("onlineGamingIncident")
    cell_phone: CellPhoneIncident | None = el("cellPhoneIncident")
    non_internet: NonInternetIncident | None = el("nonInternetIncident")
    peer2peer: Peer2PeerIncident | None = el("peer2peerIncident")


@dataclass(frozen=True, slots=True)
class ServedLegalProcessInternational(Node):
    value: bool | None = text(required=True, hint="whether legal process was served")
    flea_country: str | None = attr("fleaCountry", enum=COUNTRIES, hint="an ISO country code")


@dataclass(frozen=True, slots=True)
class LawEnforcement(Node):
    agency_name: str | None = el("agencyName", required=True, hint="the agency name")
    case_number: str | None = el("caseNumber")
    officer_contact: ContactPerson | None = el("officerContact")
    reported_to_le: bool | None = el("reportedToLe")
    served_legal_process_domestic: bool | None = el("servedLegalProcessDomestic")
    served_legal_process_international: ServedLegalProcessInternational | None = el(
        "servedLegalProcessInternational"
    )


@dataclass(frozen=True, slots=True)
class Reporter(Node):
    reporting_person: Person | None = el(
        "reportingPerson", required=True, hint="the reporting person"
    )
    contact_person: ContactPerson | None = el("contactPerson")
    company_template: str | None = el("companyTemplate")
    terms_of_service: str | None = el(
        "termsOfService", max_len=MAX_TEXT, hint="the terms of service"
    )
    legal_url: str | None = el("legalURL")


@dataclass(frozen=True, slots=True)
class PersonOrUserReported(Node):
    person: Person | None = el("personOrUserReportedPerson")
    vehicle_description: str | None = el("vehicleDescription")
    esp_identifier: str | None = el("espIdentifier")
    esp_service: str | None = el("espService")
    compromised_account: bool | None = el("compromisedAccount")
    screen_name: str | None = el("screenName")
    display_names: tuple[str, ...] = many("displayName")
    profile_urls: tuple[str, ...] = many("profileUrl")
    profile_bio: str | None = el("profileBio")
    ip_capture_events: tuple[IpCaptureEvent, ...] = many("ipCaptureEvent")
    device_ids: tuple[DeviceId, ...] = many("deviceId")
    third_party_user_reported: bool | None = el("thirdPartyUserReported")
    prior_ct_reports: tuple[int, ...] = many("priorCTReports")
    group_identifier: str | None = el("groupIdentifier")
    account_temporarily_disabled: AccountTemporarilyDisabled | None = el(
        "accountTemporarilyDisabled"
    )
    account_permanently_disabled: AccountPermanentlyDisabled | None = el(
        "accountPermanentlyDisabled"
    )
    estimated_location: EstimatedLocation | None = el("estimatedLocation")
    all_emails_reported: bool | None = el("allEmailsReported")
    associated_accounts: tuple[AssociatedAccount, ...] = many("associatedAccount")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class IntendedRecipient(Node):
    person: Person | None = el("intendedRecipientPerson")
    esp_identifier: str | None = el("espIdentifier")
    esp_service: str | None = el("espService")
    compromised_account: bool | None = el("compromisedAccount")
    screen_name: str | None = el("screenName")
    display_names: tuple[str, ...] = many("displayName")
    profile_urls: tuple[str, ...] = many("profileUrl")
    profile_bio: str | None = el("profileBio")
    ip_capture_events: tuple[IpCaptureEvent, ...] = many("ipCaptureEvent")
    device_ids: tuple[DeviceId, ...] = many("deviceId")
    prior_ct_reports: tuple[int, ...] = many("priorCTReports")
    group_identifier: str | None = el("groupIdentifier")
    account_temporarily_disabled: AccountTemporarilyDisabled | None = el(
        "accountTemporarilyDisabled"
    )
    account_permanently_disabled: AccountPermanentlyDisabled | None = el(
        "accountPermanentlyDisabled"
    )
    estimated_location: EstimatedLocation | None = el("estimatedLocation")
    all_emails_reported: bool | None = el("allEmailsReported")
    additional_info: tuple[str, ...] = many("additionalInfo")


@dataclass(frozen=True, slots=True)
class Victim(Node):
    person: Person | None = el("victimPerson", required=True, hint="the victim")
    esp_identifier: str | None = el("espIdentifier")
    esp_service: str | None = el("espService")
    compromised_account: bool | None = el("compromisedAccount")
    screen_name: str | None = el("screenName")
    display_names: tuple[str, ...] = many("displayName")
    profile_urls: tuple[str, ...] = many("profileUrl")
    profile_bio: str | None = el("profileBio")
    ip_capture_events: tuple[IpCaptureEvent, ...] = many("ipCaptureEvent")
    device_ids: tuple[DeviceId, ...] = many("deviceId")
    school_name: str | None = el("schoolName")
    prior_ct_reports: tuple[int, ...] = many("priorCTReports")
    account_temporarily_disabled: AccountTemporarilyDisabled | None = el(
        "accountTemporarilyDisabled"
    )
    account_permanently_disabled: AccountPermanentlyDisabled | None = el(
        "accountPermanentlyDisabled"
    )
    estimated_location: EstimatedLocation | None = el("estimatedLocation")
    all_emails_reported: bool | None = el("allEmailsReported")
    associated_accounts: tuple[AssociatedAccount, ...] = many("associatedAccount")
    additional_info: str | None = el("additionalInfo")


@dataclass(frozen=True, slots=True)
class Report(Node):
    """The `<report>` document sent to /submit."""

    batched_report: BatchedReport | None = el("batchedReport")
    incident_summary: IncidentSummary | None = el(
        "incidentSummary", required=True, hint="the incident summary"
    )
    internet_details: tuple[InternetDetails, ...] = many("internetDetails")
    law_enforcement: LawEnforcement | None = el("lawEnforcement")
    reporter: Reporter | None = el("reporter", required=True, hint="the reporter")
    persons_reported: tuple[PersonOrUserReported, ...] = many("personOrUserReported")
    intended_recipients: tuple[IntendedRecipient, ...] = many("intendedRecipient")
    victims: tuple[Victim, ...] = many("victim")
    additional_info: str | None = el(
        "additionalInfo", max_len=MAX_TEXT, hint="the report's additional information"
    )


# ---------------------------------------------------------------- file details


@dataclass(frozen=True, slots=True)
class FileAnnotations(Node):
    ANY_ORDER: ClassVar[bool] = True
    anime_drawing_virtual_hentai: bool = flag("animeDrawingVirtualHentai")
    potential_meme: bool = flag("potentialMeme")
    viral: bool = flag("viral")
    possible_self_production: bool = flag("possibleSelfProduction")
    physical_harm: bool = flag("physicalHarm")
    violence_gore: bool = flag("violenceGore")
    bestiality: bool = flag("bestiality")
    live_streaming: bool = flag("liveStreaming")
    infant: bool = flag("infant")
    generative_ai: bool = flag("generativeAi")


@dataclass(frozen=True, slots=True)
class OriginalFileHash(Node):
    value: str | None = text(required=True, hint="the hash value")
    hash_type: str | None = attr("hashType", required=True, hint="the hash type (MD5, SHA1, ...)")


@dataclass(frozen=True, slots=True)
class NameValuePair(Node):
    name: str | None = el("name", required=True, hint="the name")
    value: str | None = el("value", required=True, hint="the value")


@dataclass(frozen=True, slots=True)
class Details(Node):
    type: str | None = attr("type", enum=DETAILS_TYPES)
    pairs: tuple[NameValuePair, ...] = many("nameValuePair", required=True, hint="a name/value")


@dataclass(frozen=True, slots=True)
class FileDetails(Node):
    """The `<fileDetails>` document sent to /fileinfo for one uploaded file.

    `report_id` and `file_id` are filled in at filing time (None in a draft)."""

    EXCLUSIVE: ClassVar[tuple[tuple[str, str], ...]] = (("potential_meme", "file_annotations"),)
    report_id: int | None = el("reportId", required=True, hint="the NCMEC report id")
    file_id: str | None = el("fileId", required=True, hint="the NCMEC file id")
    file_name: str | None = el("fileName")
    original_file_name: str | None = el("originalFileName")
    uploaded_to_esp_timestamp: dt.datetime | None = el("uploadedToEspTimestamp")
    location_of_file: str | None = el("locationOfFile")
    file_viewed_by_esp: bool | None = el("fileViewedByEsp")
    exif_viewed_by_esp: bool | None = el("exifViewedByEsp")
    publicly_available: bool | None = el("publiclyAvailable")
    file_relevance: str | None = el("fileRelevance", enum=FILE_RELEVANCE)
    potential_meme: bool | None = el("potentialMeme")
    file_annotations: FileAnnotations | None = el("fileAnnotations")
    industry_classification: str | None = el(
        "industryClassification", enum=INDUSTRY_CLASSIFICATIONS
    )
    original_file_hashes: tuple[OriginalFileHash, ...] = many("originalFileHash")
    ip_capture_event: IpCaptureEvent | None = el("ipCaptureEvent")
    device_ids: tuple[DeviceId, ...] = many("deviceId")
    details: tuple[Details, ...] = many("details")
    additional_info: tuple[str, ...] = many("additionalInfo")
