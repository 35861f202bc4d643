#!/usr/bin/env python3
"""Generate the example corpus for routeq's batch summarisation demo and integration tests.

``routeq summarize examples/corpus --out summaries.jsonl`` needs inputs of every kind the ingester
handles (plain text, Markdown, HTML, JSONL, long reports that must be split) and inputs it must
refuse with a reason; the integration tests need the same mix at a larger scale. This script
writes that corpus:

- ``notes/``: short plain-text notes (memos, meeting notes, incident notes, customer emails) of
  60-250 words, plus ``cafe-menu-cp1252.txt``, a Windows-1252 file encoding detection must accept;
- ``docs/``: Markdown documents with headings, lists and tables, 150-600 words;
- ``web/``: HTML pages (product announcements, blog posts, changelogs) with a ``<title>``,
  scripts and styles to strip, lists, a table and character entities, 150-600 visible words;
- ``reports/``: long reports of 3,500-9,000 words that must be split before summarising;
- ``records.jsonl``: support tickets, one JSON object per line, plus one invalid line and one
  record without ``text``;
- ``malformed/``: files routeq must reject with a reason (binary, undecodable, empty, a PDF,
  HTML with no visible text).

Everything is fictional and written for this project. Companies, people, places and figures are
drawn from small pools, so every document carries concrete numbers and names that a check such as
"every number and name in the summary appears in the source" can verify. All randomness comes from
``random.Random`` instances seeded from ``--seed`` (one per document, so the default corpus is a
prefix of a larger one), and the same options always produce byte-identical files. The output
directory is only ever deleted when it holds this script's marker file. Standard library only.

Usage::

    python examples/make_corpus.py                  # writes examples/corpus with the defaults
    python examples/make_corpus.py --out /tmp/corpus --docs 120 --long 6 --seed 7
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import shutil
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MARKER = ".generated-by-make-corpus"
"""Marker file proving a directory was written by this script (hidden: routeq skips it)."""

YEAR = 2025
DEFAULT_OUT = Path(__file__).resolve().parent / "corpus"

# --------------------------------------------------------------------------------------------
# Pools of fictional facts
# --------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Amara", "Tomasz", "Priya", "Henrik", "Lucía", "Kenji", "Fatima", "Oskar", "Ngozi", "Mateo",
    "Ingrid", "Rahul", "Sione", "Chiara", "Dmitri", "Aisha", "Callum", "Mei", "Jonas", "Yusuf",
    "Leila", "Bram", "Noor", "Eero", "Rosa", "Tariq", "Hanne", "Kofi", "Inês", "Wen", "Zoë",
    "Marek", "Adaeze", "Soren", "Valentina", "Idris",
)  # fmt: skip
LAST_NAMES = (
    "Okafor", "Wielgosz", "Raman", "Dahl", "Ferreira", "Morimoto", "Haddad", "Lindgren",
    "Adeyemi", "Quispe", "Solberg", "Kapoor", "Tupou", "Benedetti", "Volkov", "Rahman", "MacLeod",
    "Zhou", "Brandt", "Demir", "Nasser", "Van Aken", "Siddiqui", "Koskinen", "Alvarado",
    "Mahmoud", "Jakobsen", "Mensah", "Carvalho", "Liang", "Østergaard", "Petrović", "Achebe",
)  # fmt: skip
COMPANIES = (
    "Halvorsen Freight", "Brightwater Logistics", "Quillfeather Analytics", "Tamberlane Foods",
    "Norrland Robotics", "Cobalt Ridge Insurance", "Pellucid Health", "Marrowstone Energy",
    "Larkspur Textiles", "Fernhollow Software", "Ironbark Cycles", "Sableway Couriers",
    "Glasswing Labs", "Oakhurst Mutual", "Peregrine Paper Co.", "Driftwood Outdoor",
    "Kittering Pharma", "Suncatch Solar", "Verdance Grocers", "Tallow & Finch",
    "Wexford Components", "Bluefen Dairy", "Calderwood Homeware", "Nimbus Ticketing",
)  # fmt: skip
PLACES = (
    "Port Calder", "Eastmere", "Vellingford", "Ashgrove", "Kestrel Bay", "Saltbridge",
    "Dunmore Flats", "Greyhaven", "Thornbury Vale", "Marlow Cross", "Lindenholm", "Brackwater",
    "Caskett Hill", "New Aldous", "Rivermoor", "Stenby", "Halloway", "Coldharbour Point",
    "Wrenfield", "Ostergate", "Pellham Quay", "Tarnside",
)  # fmt: skip
PRODUCTS = (
    "Ledgerline", "Tidewatch", "Parcelgrid", "Orbitdesk", "Lumen Scheduler", "Quarry DB",
    "Beacon Pay", "Fieldnote", "Harbormaster", "Slate CRM", "Kiln Build", "Northstar Maps",
    "Tessellate", "Driftlog", "Copperline Auth", "Wayfinder Routing",
)  # fmt: skip
TEAMS = (
    "Platform", "Payments", "Fulfilment", "Customer Support", "Data Engineering", "Finance",
    "Warehouse Operations", "Security", "Mobile", "Procurement", "Billing", "Logistics Planning",
)  # fmt: skip
ROLES = (
    "Head of Operations", "Finance Director", "People Partner", "Engineering Manager",
    "Site Manager", "Chief Operating Officer", "Facilities Lead", "Head of Customer Success",
)  # fmt: skip
STREETS = (
    "Harbour Road", "Mill Lane", "Station Street", "Quarry Way", "Kingfisher Avenue",
    "Tannery Row", "Orchard Close", "Canal Street", "Beacon Hill Road", "Foundry Lane",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def slugify(text: str, max_len: int = 40) -> str:
    """Lower-case ASCII slug of ``text`` for file names and e-mail addresses."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1]
        slug = cut[: cut.rfind("-")] if "-" in cut else slug[:max_len]
    return slug


def word_count(text: str) -> int:
    return len(text.split())


class Facts:
    """Random but reproducible facts: names, dates, amounts, all from one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, pool: Sequence[str]) -> str:
        return self.rng.choice(pool)

    def sample(self, pool: Sequence[str], n: int) -> list[str]:
        return self.rng.sample(list(pool), n)

    def person(self) -> str:
        return f"{self.pick(FIRST_NAMES)} {self.pick(LAST_NAMES)}"

    def people(self, n: int) -> list[str]:
        """``n`` people with distinct first and last names."""
        firsts = self.sample(FIRST_NAMES, n)
        lasts = self.sample(LAST_NAMES, n)
        return [f"{first} {last}" for first, last in zip(firsts, lasts, strict=True)]

    def company(self) -> str:
        return self.pick(COMPANIES)

    def place(self) -> str:
        return self.pick(PLACES)

    def product(self) -> str:
        return self.pick(PRODUCTS)

    def team(self) -> str:
        return self.pick(TEAMS)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def count(self, lo: int = 120, hi: int = 9_800) -> str:
        return f"{self.integer(lo, hi):,}"

    def pct(self, lo: float = 1.0, hi: float = 40.0) -> str:
        return f"{self.rng.uniform(lo, hi):.1f}%"

    def dec(self, lo: float = 1.0, hi: float = 9.9) -> str:
        return f"{self.rng.uniform(lo, hi):.1f}"

    def money(self, lo: int = 2_000, hi: int = 250_000) -> str:
        return f"${self.integer(lo // 100, hi // 100) * 100:,}"

    def money_m(self, lo: float = 0.4, hi: float = 48.0) -> str:
        return f"${self.rng.uniform(lo, hi):.2f} million"

    def money_small(self, lo: float = 1.5, hi: float = 14.0) -> str:
        return f"${self.rng.uniform(lo, hi):.2f}"

    def month(self) -> str:
        return self.pick(MONTHS)

    def date(self, month: int | None = None) -> str:
        chosen = month if month is not None else self.integer(1, 12)
        return f"{self.integer(1, 28)} {MONTHS[chosen - 1]} {YEAR}"

    def iso_date(self, month: int | None = None) -> str:
        chosen = month if month is not None else self.integer(1, 12)
        return f"{YEAR}-{chosen:02d}-{self.integer(1, 28):02d}"

    def time(self, lo_hour: int = 0, hi_hour: int = 23) -> str:
        return f"{self.integer(lo_hour, hi_hour):02d}:{self.integer(0, 59):02d}"

    def ticket(self, prefix: str) -> str:
        return f"{prefix}-{self.integer(1000, 9899)}"


def first_name(person: str) -> str:
    return person.split(" ", 1)[0]


def email_of(person: str, company: str) -> str:
    first, last = person.split(" ", 1)
    domain = slugify(company).replace("-", "")
    return f"{slugify(first)}.{slugify(last).replace('-', '')}@{domain}.example"


def clock(minutes: int) -> str:
    """``HH:MM`` for a number of minutes after midnight (wrapping past 24 hours)."""
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --------------------------------------------------------------------------------------------
# Short notes (.txt)
# --------------------------------------------------------------------------------------------


def _memo_body(f: Facts, variant: int, company: str) -> tuple[str, list[str]]:
    """Subject and paragraphs of one memo."""
    team = f.team()
    contact = f.person()
    email = email_of(contact, company)
    topic = variant % 6
    if topic == 0:
        old, new = f.sample(PLACES, 2)
        move = f.date()
        street = f"{f.integer(2, 180)} {f.pick(STREETS)}"
        return f"Office move to {new}", [
            f"From {move}, the {team} team moves out of the {old} office and into the new site "
            f"at {street}, {new}. The new floor has {f.integer(40, 160)} desks, "
            f"{f.integer(4, 14)} meeting rooms and a quiet room, and is a "
            f"{f.integer(3, 15)}-minute walk from {new} station.",
            f"Movers from {f.company()} arrive at 07:30 on {move}. Please pack your desk into the "
            "labelled crates (three per person) by 16:00 on the working day before; anything left "
            "loose will be stored, not moved. Monitors and docking stations stay behind and are "
            "replaced at the new site.",
            f"The lease on {old} ends on {f.date()}, which saves about {f.money(40_000, 400_000)} "
            "a year. If the move causes a problem for your commute or working pattern, talk to "
            f"{contact} ({email}) before {f.date()} so we can look at options together.",
        ]
    if topic == 1:
        start = f.date()
        approver = f.person()
        return f"New expense process from {start}", [
            f"From {start}, paper expense forms are retired and all claims go through "
            f"{f.product()}. The app is already on your phone if you use a company device; "
            "otherwise install it from the staff portal and sign in with your usual account.",
            f"Claims up to {f.money(200, 900)} are approved by your line manager; anything above "
            f"that also needs sign-off from {approver} in Finance. Photograph receipts within "
            f"{f.integer(7, 30)} days of purchase. Mileage is now paid at "
            f"{f.money_small(0.35, 0.6)} per mile.",
            f"Paper claims received after {f.date()} cannot be processed. Last year we handled "
            f"{f.count(900, 6000)} paper claims and the average took {f.integer(9, 31)} days to "
            f"pay; the new process should bring that under a week. Questions go to {contact} "
            f"at {email}.",
        ]
    if topic == 2:
        recipients = f.integer(300, 2400)
        clicked = f.integer(recipients // 20, recipients // 6)
        deadline = f.date()
        return f"Mandatory security training by {deadline}", [
            f"Our last simulated phishing campaign went to {recipients:,} staff on {f.date()}. "
            f"{clicked:,} people ({clicked / recipients:.1%}) clicked the link and "
            f"{f.integer(5, clicked // 3)} entered their password on the fake page. That is better "
            f"than the {f.pct(18, 30)} we saw in {f.month()}, but it is not good enough.",
            "Everyone must complete the 25-minute security awareness module in "
            f"{f.product()} by {deadline}. Managers receive a completion report for their teams "
            "every Monday. Staff who have not finished by the deadline will have remote access "
            "paused until they do.",
            "If you receive a suspicious message, use the Report button in your mail client "
            f"rather than forwarding it. {contact} and the security team review every report "
            f"within {f.integer(2, 8)} working hours.",
        ]
    if topic == 3:
        size = f.integer(12, 30)
        booked = f.integer(4, size - 5)
        month = f.month()
        manager = f.person()
        return f"Holiday cover for the {team} team in {month}", [
            f"{month} is our busiest month for leave: {booked} of the {size} people in {team} "
            "have booked at least one week. To keep the cover we promised "
            f"{f.company()} in our service agreement, no more than {f.integer(3, 5)} people "
            "can be off on the same day.",
            f"Requests already approved stand. New requests are approved in the order they "
            f"arrive in the leave system, and {manager} will confirm each one within "
            f"{f.integer(2, 5)} working days. Please swap shifts directly with a colleague where "
            "you can and record the swap in the rota.",
            f"Anyone who works on the public holiday on {f.date()} receives double pay and a day "
            f"off in lieu, to be taken before {f.date()}. Questions to {contact}.",
        ]
    if topic == 4:
        supplier, alt1, alt2 = f.sample(COMPANIES, 3)
        buyer = f.person()
        return f"Price increase from {supplier}", [
            f"{supplier}, which supplies about {f.pct(15, 60)} of our packaging, has told us "
            f"that its prices rise by {f.pct(4, 14)} from {f.date()}. On last year's volumes "
            f"that adds roughly {f.money(20_000, 300_000)} to our annual costs.",
            f"{buyer} in Procurement has asked for quotes from {alt1} and {alt2} and expects "
            f"to report back by {f.date()}. Until then, please do not place orders larger than "
            f"{f.count(500, 5000)} units without checking with Procurement, and avoid "
            f"stockpiling: storage at {f.place()} is already at {f.pct(85, 98)} of capacity.",
            f"If your team has a contract that refers to {supplier} pricing, send a copy to "
            f"{email} so it can be included in the review.",
        ]
    newhire, interim = f.people(2)
    previous = f.company()
    return f"Welcome {newhire}, new head of {team}", [
        f"I am pleased to announce that {newhire} joins {company} on {f.date()} as head of "
        f"{team}. {first_name(newhire)} comes to us from {previous}, where they led a team of "
        f"{f.integer(8, 60)} and ran the rollout of {f.product()} across {f.integer(3, 19)} "
        "sites.",
        f"{first_name(newhire)} will be based in our {f.place()} office. {interim}, who has led "
        f"{team} on an interim basis since {f.month()}, returns to the planning role with our "
        f"thanks: under {first_name(interim)}'s leadership the team cut its backlog from "
        f"{f.integer(300, 900)} to {f.integer(40, 250)} open items.",
        "Please make them welcome. There will be a short introduction at the all-hands meeting "
        f"on {f.date()}.",
    ]


def note_memo(f: Facts, variant: int) -> tuple[str, str]:
    company = f.company()
    author = f.person()
    role = f.pick(ROLES)
    subject, paragraphs = _memo_body(f, variant, company)
    header = (
        f"MEMO\n\nTo: All staff, {company}\nFrom: {author}, {role}\nDate: {f.date()}\n"
        f"Subject: {subject}"
    )
    return subject, "\n\n".join([header, *paragraphs, author]) + "\n"


MEETING_PROJECTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "{product} migration",
        (
            "{done} of {total} services have moved to {product}; the remaining ones include "
            "billing, which is the riskiest.",
            "Cut-over of the reporting service slipped to {date} because test data from the "
            "{team} team arrived late.",
            "Cloud spend during the overlap period is running at {money} a month, {pct} over "
            "forecast.",
        ),
    ),
    (
        "Warehouse automation pilot at {place}",
        (
            "{done} of the {total} picking robots are live and pick about {count} lines a day.",
            "Mispicks are at {dec} per thousand lines, against {dec} for manual picking.",
            "{vendor} confirmed the charging-station software update for {date}.",
        ),
    ),
    (
        "Spring pricing review",
        (
            "Analysis of {count} orders shows that {pct} of customers on the legacy plan would "
            "pay less on the new standard plan.",
            "Sales wants {done} weeks' notice for existing customers; Finance prefers {total}.",
            "{vendor} has asked for a fixed price until {date}.",
        ),
    ),
    (
        "Customer portal redesign",
        (
            "Usability tests with {done} customers found the new invoice page {pct} faster to use.",
            "The accessibility audit by {vendor} raised {total} issues; three of them block "
            "release.",
            "Beta sign-ups reached {count}, mostly from customers in {place}.",
        ),
    ),
    (
        "Data retention clean-up",
        (
            "{done} TB of logs older than {total} days have been deleted, saving about {money} "
            "a month.",
            "Legal confirmed on {date} that support transcripts must be kept for six years.",
            "{done} teams still have not returned the retention questionnaire.",
        ),
    ),
    (
        "Quarter-end close",
        (
            "{done} of {total} balance-sheet reconciliations are signed off.",
            "Accruals for the {place} contract are {money} higher than estimated because "
            "invoices from {vendor} arrived late.",
            "The audit team from {vendor} starts fieldwork on {date}.",
        ),
    ),
)
MEETING_DECISIONS = (
    "Go-live for the next phase stays at {date}; {person} will say by Friday if that changes.",
    "A budget of {money} is approved for extra testing, funded from the {team} contingency.",
    "The weekly sync moves to Thursdays at 14:00 from {date}.",
    "{person} becomes the single point of contact for {vendor} during the project.",
    "Phase two excludes the {place} site; it will be reconsidered in {month}.",
    "We will not extend the contract with {vendor} beyond {date}.",
    "Progress reports go to the steering group every second Monday, starting {date}.",
)
MEETING_ACTIONS = (
    "{person}: circulate the revised plan by {date}",
    "{person}: book the load-test environment for the week of {date}",
    "{person}: confirm the data export format with {vendor}",
    "{person}: get two quotes for extra storage before {date}",
    "{person}: update the risk log and share it with the steering group",
    "{person}: draft the customer notice and send it to Legal by {date}",
    "{person}: check licence numbers with {vendor} and report back",
    "{person}: arrange a site visit to {place} in {month}",
)


def note_meeting(f: Facts, variant: int) -> tuple[str, str]:
    name, statuses = MEETING_PROJECTS[(variant // 4) % len(MEETING_PROJECTS)]
    attendees = f.people(f.integer(4, 6))
    total = f.integer(8, 40)
    product, place, vendor = f.product(), f.place(), f.company()
    values: dict[str, Callable[[], str]] = {
        "product": lambda: product,
        "place": lambda: place,
        "vendor": lambda: vendor,
        "team": f.team,
        "date": f.date,
        "month": f.month,
        "money": lambda: f.money(3_000, 90_000),
        "pct": lambda: f.pct(3, 35),
        "dec": lambda: f.dec(0.5, 6),
        "count": lambda: f.count(300, 9000),
        "done": lambda: str(f.integer(2, total - 1)),
        "total": lambda: str(total),
        "person": lambda: f.pick(attendees),
    }
    title = fill(name, values)
    decisions = [fill(t, values) for t in f.sample(MEETING_DECISIONS, f.integer(2, 3))]
    actions = [fill(t, values) for t in f.sample(MEETING_ACTIONS, f.integer(3, 4))]
    start = f.integer(8 * 60, 15 * 60) // 15 * 15
    lines = [
        f"Meeting notes: {title}, weekly sync",
        f"Date: {f.date()}, {clock(start)}-{clock(start + f.integer(2, 4) * 15)}",
        f"Attendees: {attendees[0]} (chair), {', '.join(attendees[1:])}",
        "",
        "1. Status",
        " ".join(fill(s, values) for s in statuses),
        "",
        "2. Decisions",
        *(f"- {d}" for d in decisions),
        "",
        "3. Action items",
        *(f"- {a}" for a in actions),
        "",
        f"Next meeting: {f.date()}. Notes taken by {attendees[-1]}.",
    ]
    return f"{title} sync", "\n".join(lines) + "\n"


INCIDENT_SCENARIOS = (
    (
        "Checkout payments failing",
        "Customers saw 'payment could not be completed' at checkout and {pct} of card payments "
        "failed.",
        "The TLS certificate on the connection to our payment provider, {vendor}, expired; the "
        "renewal reminder went to a mailbox nobody reads any more.",
        "Renewed the certificate and restarted the payment gateway; failed orders were retried.",
    ),
    (
        "Order confirmation emails delayed",
        "Order confirmation emails were delayed by up to {hours} hours; {count} emails queued.",
        "The email worker ran out of disk space after a configuration change disabled log "
        "rotation on {date}.",
        "Freed disk space, re-enabled log rotation and let the queue drain; no email was lost.",
    ),
    (
        "Label printers offline at {place}",
        "All {n} label printers at the {place} site stopped printing, halting dispatch for the "
        "morning wave of {count} parcels.",
        "A network switch in the packing area failed after a short power cut and did not come "
        "back up.",
        "Replaced the switch from spares; a second switch and a small UPS have been ordered.",
    ),
    (
        "Search returning no results",
        "Product search returned no results for {pct} of queries; browsing by category still "
        "worked.",
        "A reindex job started outside its maintenance window and pointed the live index alias "
        "at an empty index.",
        "Pointed the alias back to the previous index and rescheduled the reindex job.",
    ),
    (
        "Duplicate invoices sent",
        "{count} customers received the same invoice twice; some paid both.",
        "The billing job retried after a timeout from {vendor} without an idempotency key.",
        "Voided the duplicates, refunded double payments and added idempotency keys to the job.",
    ),
    (
        "Mobile app login failures",
        "About {pct} of mobile app users could not log in; web logins were unaffected.",
        "The identity provider rotated its signing key and the app kept the old key cached for "
        "24 hours.",
        "Forced a key refresh through a remote configuration flag and shortened the cache time.",
    ),
)
INCIDENT_FOLLOW_UPS = (
    "Add an alert {n} days before any certificate or key expires ({person})",
    "Write a runbook entry for this failure and link it from the alert ({person})",
    "Review the change process for configuration edits with {team} ({person})",
    "Check the other {n} sites for the same single point of failure ({person})",
    "Contact the {n} largest affected customers personally ({person})",
    "Add a synthetic check that fails when this happens again ({person})",
    "Schedule a blameless review for {date} ({person})",
)


def note_incident(f: Facts, variant: int) -> tuple[str, str]:
    title, impact, cause, fix = INCIDENT_SCENARIOS[(variant // 4) % len(INCIDENT_SCENARIOS)]
    place, vendor = f.place(), f.company()
    values: dict[str, Callable[[], str]] = {
        "pct": lambda: f.pct(5, 60),
        "count": lambda: f.count(200, 8000),
        "hours": lambda: str(f.integer(2, 9)),
        "n": lambda: str(f.integer(3, 14)),
        "vendor": lambda: vendor,
        "place": lambda: place,
        "date": f.date,
        "team": f.team,
        "person": f.person,
    }
    title = fill(title, values)
    start = f.integer(0, 23 * 60)
    duration = f.integer(12, 190)
    lines = [
        f"Incident note {f.ticket('INC')}: {title}",
        f"Severity: SEV-{f.integer(1, 3)}",
        f"Reported by: {f.person()} at {clock(start)} UTC on {f.date()}",
        f"Resolved: {clock(start + duration)} UTC ({duration} minutes)",
        f"Incident lead: {f.person()}",
        "",
        f"What happened: {fill(impact, values)}",
        "",
        f"Cause: {fill(cause, values)}",
        "",
        f"Fix: {fill(fix, values)}",
        "",
        "Follow-ups:",
        *(f"- {fill(t, values)}" for t in f.sample(INCIDENT_FOLLOW_UPS, f.integer(2, 4))),
    ]
    return title, "\n".join(lines) + "\n"


def note_email(f: Facts, variant: int) -> tuple[str, str]:
    sender = f.person()
    customer = f.company()
    supplier = f.company()
    while supplier == customer:
        supplier = f.company()
    order = f.integer(100_000, 999_999)
    topic = variant // 4 % 6
    if topic == 0:
        subject = f"Late delivery, order #{order}"
        body = [
            f"Our order #{order} for {f.integer(12, 240)} cartons was due at our {f.place()} "
            f"warehouse on {f.date()}. It has still not arrived, and the tracking page has shown "
            f"'in transit' for {f.integer(4, 11)} days.",
            f"This is the third late delivery this quarter. The delay has already cost us about "
            f"{f.money(1_500, 25_000)} in lost sales, because the goods were for a promotion "
            f"starting on {f.date()}.",
            "Please tell me by the end of this week where the shipment is, when it will arrive, "
            "and what compensation you offer under clause 7 of our agreement.",
        ]
    elif topic == 1:
        amount = f.money_small(120, 4_800)
        subject = f"Charged twice for invoice INV-{order}"
        body = [
            f"Our card was charged {amount} twice on {f.date()} for invoice INV-{order}. Both "
            "payments appear on our statement with the same reference.",
            f"Could you refund the duplicate payment of {amount} to the original card? Our "
            f"finance team closes the month on {f.date()}, so a confirmation before then would "
            "help a lot.",
            f"For reference, our account number is {f.ticket('ACC')} and the card ends in "
            f"{f.integer(1000, 9999)}.",
        ]
    elif topic == 2:
        product = f.product()
        subject = f"Feature request: bulk export in {product}"
        body = [
            f"We have used {product} for {f.integer(2, 6)} years across {f.integer(3, 40)} "
            "teams and are very happy with it overall.",
            f"One thing holds us back: exporting more than {f.count(500, 5000)} rows means "
            "clicking through page by page. Our analysts spend roughly "
            f"{f.integer(3, 12)} hours a month on this.",
            "A scheduled CSV export to our storage bucket, or an API endpoint that returns "
            "the full result set, would solve it. Is either on your roadmap? We would be "
            "glad to test a beta version.",
        ]
    elif topic == 3:
        agent = f.person()
        subject = f"Thank you to {agent}"
        body = [
            f"I want to thank {agent} from your support team. On {f.date()} our "
            f"{f.place()} store lost its point-of-sale connection an hour before opening.",
            f"{first_name(agent)} stayed on the phone for {f.integer(40, 130)} minutes, found "
            "that a router update had reset our firewall rules, and walked our manager through "
            f"the fix. We opened on time and took {f.money(3_000, 40_000)} that day.",
            "Please pass this on to their manager. Service like this is why we renewed our "
            "contract last month.",
        ]
    elif topic == 4:
        subject = "Questions about our contract renewal"
        body = [
            f"Our contract (reference {f.ticket('CTR')}) ends on {f.date()}, and your renewal "
            f"quote shows a price of {f.money(8_000, 120_000)} a year, {f.pct(6, 22)} more than "
            "we pay now.",
            f"Before we decide, could you explain what the increase covers? We also need to "
            f"know whether the {f.integer(20, 200)} seats can be moved between our "
            f"{f.place()} and {f.place()} offices, and whether a two-year term would lower the "
            "price.",
            f"Our purchasing committee meets on {f.date()}, so we would appreciate an answer "
            "before then.",
        ]
    else:
        damaged = f.integer(3, 30)
        subject = f"Damaged goods in delivery {order}"
        body = [
            f"Delivery {order} reached our {f.place()} site on {f.date()}. Of the "
            f"{f.integer(damaged + 10, 200)} units, {damaged} had crushed packaging and "
            f"{f.integer(1, damaged)} were broken.",
            f"Photos are attached. The driver noted the damage on the delivery note, which was "
            f"signed by {f.person()} at goods-in.",
            f"Please arrange replacements, or a credit of {f.money(300, 9_000)}, by "
            f"{f.date()}. We cannot accept further deliveries packed this way.",
        ]
    header = (
        f"From: {sender} <{email_of(sender, customer)}>\n"
        f"To: support@{slugify(supplier).replace('-', '')}.example\n"
        f"Date: {f.date()}\nSubject: {subject}"
    )
    closing = f"Kind regards,\n{sender}\n{f.pick(ROLES)}, {customer}, {f.place()}"
    text = "\n\n".join([header, f"Hello {supplier} team,", *body, closing]) + "\n"
    return subject, text


NOTE_MAKERS: tuple[tuple[str, Callable[[Facts, int], tuple[str, str]]], ...] = (
    ("memo", note_memo),
    ("meeting", note_meeting),
    ("incident", note_incident),
    ("email", note_email),
)

# --------------------------------------------------------------------------------------------
# Template filling
# --------------------------------------------------------------------------------------------

_SLOT = re.compile(r"\{(\w+)\}")


def fill(template: str, values: dict[str, Callable[[], str]]) -> str:
    """Replace each ``{name}`` in ``template`` with a fresh ``values[name]()``."""
    return _SLOT.sub(lambda match: values[match.group(1)](), template)


# --------------------------------------------------------------------------------------------
# Markdown documents
# --------------------------------------------------------------------------------------------


def md_onboarding(f: Facts) -> tuple[str, str]:
    company, team = f.company(), f.team()
    lead, buddy, hr, it = f.people(4)
    title = f"Welcome to the {team} team"
    text = f"""# {title}

This guide is for people joining {team} at {company}. Keep it open during your first two weeks;
{lead}, who leads the team, updates it after every new starter's feedback.

## Your first week

1. Collect your laptop from the IT desk on floor {f.integer(1, 6)} of the {f.place()} office.
   {it} will set up your accounts; bring photo ID.
2. Meet your buddy, {buddy}, who will pair with you on your first {f.integer(3, 8)} tasks.
3. Read the last three quarterly reviews in the shared drive (about {f.integer(40, 90)} pages).
4. Join the team stand-up at 09:{f.integer(10, 45)} every weekday.

## Tools we use

- **{f.product()}** for tickets and planning; the board is called "{team} flow".
- **{f.product()}** for documentation.
- **{f.product()}** for dashboards; start with the "Daily health" view.

## People to know

| Name | Role | Ask them about |
| --- | --- | --- |
| {lead} | Team lead | Priorities, career, anything |
| {buddy} | Your buddy | Day-to-day work and code reviews |
| {hr} | People Partner | Contracts, leave, benefits |
| {it} | IT Support | Laptops, access, VPN |

## Numbers worth knowing

- The team has {f.integer(6, 18)} members across {f.integer(2, 4)} offices.
- We handle about {f.count(400, 4000)} requests a month and aim to close {f.pct(80, 97)}
  of them within {f.integer(2, 5)} working days.
- Our budget for training is {f.money(800, 3000)} per person per year; {hr} approves it.

## After your first month

You will have a review with {lead} after {f.integer(4, 6)} weeks. Bring one thing you would
change about how we work; several of our current practices started that way.
"""
    return title, text


def md_runbook(f: Facts) -> tuple[str, str]:
    product = f.product()
    queue = f"{slugify(product)}-jobs"
    owner, backup = f.people(2)
    threshold = f.integer(2, 20) * 500
    title = f"Runbook: {product} job queue backlog"
    text = f"""# {title}

Owner: {owner} ({f.team()} team). Backup: {backup}. Last reviewed {f.date()}.

## Symptoms

- The alert `{queue} depth > {threshold:,}` fires in the on-call channel.
- Customers report that reports or exports in {product} stay "pending" for more than
  {f.integer(10, 45)} minutes.
- Worker CPU is low while queue depth grows, which usually means workers are stuck, not busy.

## Checks

1. Open the "{product} queues" dashboard and note the depth and the oldest job's age.
2. Check worker health:

   ```sh
   routeq-admin workers --queue {queue} --status
   ```

3. If fewer than {f.integer(4, 12)} workers report `ready`, look at the last deploy time. A deploy
   in the past hour is the most likely cause.
4. Check the database connection count; above {f.integer(300, 900)} connections, workers wait
   for the pool.

## Mitigation

- Restart stuck workers one at a time, waiting for each to report `ready`.
- If a deploy is to blame, roll it back; do not try to fix forward during an incident.
- If the queue holds more than {threshold * 4:,} jobs, pause scheduled exports so interactive
  jobs drain first.

## Escalation

Page {owner} if the backlog is still growing after {f.integer(20, 40)} minutes. Outside
working hours, call the duty manager on extension {f.integer(2000, 7999)}. Incidents affecting
more than {f.integer(50, 500)} customers are SEV-2 at least; open an incident record
(template {f.ticket("TPL")}).
"""
    return title, text


def md_proposal(f: Facts) -> tuple[str, str]:
    product, new = f.sample(PRODUCTS, 2)
    author, reviewer, sponsor = f.people(3)
    cost_now = f.integer(8, 60) * 1000
    title = f"Proposal: replace {product} with {new}"
    text = f"""# {title}

- **Author:** {author}
- **Reviewers:** {reviewer}, {sponsor}
- **Status:** draft for discussion on {f.date()}

## Context

We have run {product} since {YEAR - f.integer(3, 9)}. It now costs ${cost_now:,} a month and
its vendor ends support for our version on {f.date()}. Over the last {f.integer(3, 12)} months
it caused {f.integer(3, 14)} incidents, two of them customer-facing.

## Proposal

Move to {new} in three phases, starting with the internal reporting workloads, which are the
least risky. {new} costs about ${cost_now * f.integer(55, 85) // 100:,} a month at our current
volume and supports the single sign-on setup we already have.

## Alternatives considered

- **Upgrade {product} in place.** Cheaper this year, but it only moves the same problem
  {f.integer(2, 4)} years out.
- **Build our own.** Estimated at {f.integer(4, 14)} engineer-months; we do not have the
  people.
- **Do nothing.** Unsupported software is not acceptable to our auditors.

## Rollout plan

1. Pilot with the reporting team from {f.date()} ({f.integer(2, 6)} weeks).
2. Migrate customer-facing workloads in batches of {f.integer(5, 20)} accounts.
3. Switch off {product} by {f.date()} after a {f.integer(2, 4)}-week parallel run.

## Open questions

- Does {new} meet the data-residency terms in our contract with {f.company()}?
- Who owns the migration scripts once the project ends: {reviewer}'s team or {sponsor}'s?
"""
    return title, text


def md_faq(f: Facts) -> tuple[str, str]:
    product, company = f.product(), f.company()
    title = f"{product}: frequently asked questions"
    text = f"""# {title}

Answers to the questions {company} customers ask most often. Maintained by {f.person()}.

### How much does {product} cost?

The Standard plan is {f.money_small(9, 29)} per user per month, billed annually. The Business
plan is {f.money_small(30, 79)} per user per month and adds single sign-on and audit logs.
Discounts start at {f.integer(50, 250)} users.

### Where is my data stored?

In two data centres in {f.place()} and {f.place()}. Backups are kept for {f.integer(14, 90)}
days. Customers on the Business plan can choose the region when they sign up.

### How do I export my data?

Go to **Settings > Data > Export**. Exports up to {f.count(10_000, 100_000)} rows are ready
within minutes; larger ones are emailed as a link that stays valid for {f.integer(3, 14)}
days.

### What is your uptime guarantee?

We guarantee {f.rng.choice(["99.5", "99.9", "99.95"])}% monthly availability. If we miss it,
you receive a service credit of {f.integer(5, 25)}% of that month's fee. Last year's measured
availability was {f.rng.uniform(99.90, 99.99):.2f}%.

### Can I cancel at any time?

Monthly plans can be cancelled at any time and end at the close of the billing month. Annual
plans can be cancelled within {f.integer(14, 30)} days of renewal for a full refund.

### Who do I contact for help?

Email support@{slugify(company).replace("-", "")}.example or call the support line between
08:00 and 18:00. The median first response time last quarter was {f.integer(6, 48)} minutes.
"""
    return title, text


def md_policy(f: Facts) -> tuple[str, str]:
    company = f.company()
    owner = f.person()
    cities = f.sample(PLACES, 4)
    rows = "\n".join(
        f"| {city} | {f.money(110, 260)} | {f.money_small(35, 80)} |" for city in cities
    )
    title = f"Travel and expenses policy ({company})"
    text = f"""# {title}

Effective from {f.date()}. Owner: {owner}, Finance. This policy applies to all employees and
contractors who travel on {company} business.

## Booking travel

- Book all trains, flights and hotels through the travel portal at least {f.integer(7, 21)}
  days ahead where possible.
- Flights under {f.integer(4, 6)} hours are economy class. Longer flights may be premium
  economy with approval from your director.
- Rail is preferred over flying for journeys under {f.integer(3, 5)} hours.

## Hotel and meal limits

| City | Hotel per night | Meals per day |
| --- | --- | --- |
{rows}

Elsewhere, the limits are {f.money(90, 150)} per night and {f.money_small(30, 50)} per day.

## Claiming expenses

1. Submit claims within {f.integer(20, 60)} days of the trip.
2. Attach an itemised receipt for anything over {f.money_small(10, 30)}.
3. Alcohol, minibar charges and fines are never reimbursed.

## Exceptions

Exceptions need written approval from {owner} before you travel. Last year we processed
{f.count(800, 6000)} claims and rejected {f.pct(2, 9)} of them, mostly for missing receipts.
"""
    return title, text


def md_status(f: Facts) -> tuple[str, str]:
    project = f"Project {f.pick(('Heron', 'Juniper', 'Atlas', 'Kite', 'Marlin', 'Sequoia'))}"
    lead, sponsor = f.people(2)
    month = f.integer(2, 11)
    title = f"{project}: status update for {MONTHS[month - 1]} {YEAR}"
    budget = f.integer(200, 2000) * 1000
    spent = budget * f.integer(30, 80) // 100
    milestones = "\n".join(
        f"| {name} | {f.date(min(12, month + offset))} | {status} |"
        for name, offset, status in (
            ("Requirements signed off", 0, "Done"),
            ("Pilot at " + f.place(), 1, f.pick(("Done", "On track"))),
            ("Data migration", 2, f.pick(("On track", "At risk"))),
            ("Go-live", 3, f.pick(("On track", "At risk", "Delayed"))),
        )
    )
    text = f"""# {title}

Lead: {lead}. Sponsor: {sponsor}. Overall status: **{f.pick(("green", "amber"))}**.

## Summary

{project} replaces the manual order-allocation spreadsheets at {f.company()} with
{f.product()}. This month the team finished the pilot interfaces and started loading
{f.count(20_000, 900_000)} historical orders into the test environment.

## Milestones

| Milestone | Date | Status |
| --- | --- | --- |
{milestones}

## Budget

${spent:,} of the ${budget:,} budget has been spent ({spent / budget:.0%}). The forecast at
completion is ${budget * f.integer(92, 112) // 100:,}.

## Risks

- Key-person dependency on {f.person()}, the only engineer who knows the legacy export format.
- Data quality: {f.pct(2, 12)} of historical orders lack a delivery postcode.
- The vendor's release on {f.date(min(12, month + 1))} may change the API we rely on.

## Next steps

- Finish the migration dry run by {f.date(min(12, month + 1))}.
- Agree the cut-over weekend with the warehouse managers.
"""
    return title, text


MD_MAKERS: tuple[tuple[str, Callable[[Facts], tuple[str, str]]], ...] = (
    ("onboarding", md_onboarding),
    ("runbook", md_runbook),
    ("proposal", md_proposal),
    ("faq", md_faq),
    ("policy", md_policy),
    ("status", md_status),
)

# --------------------------------------------------------------------------------------------
# HTML pages
# --------------------------------------------------------------------------------------------

E = html.escape

HTML_STYLE = """<style>
  body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; }
  table { border-collapse: collapse; }
  th, td { border: 1px solid #ccc; padding: 0.3rem 0.8rem; }
  .promo::after { content: "CSS text that must never appear in a summary"; }
</style>"""
HTML_SCRIPT = """<script>
  window.dataLayer = window.dataLayer || [];
  function track(event) { window.dataLayer.push({ event: event, page: "%s" }); }
  // If this comment shows up in extracted text, script stripping is broken.
</script>"""


def html_page(title: str, page: str, body: str, company: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{E(title)} &mdash; {E(company)}</title>
{HTML_STYLE}
{HTML_SCRIPT % page}
</head>
<body>
<header><nav><a href="/">Home</a> | <a href="/pricing">Pricing</a> | <a href="/blog">Blog</a>
</nav></header>
<main>
{body.strip()}
</main>
<footer><p>&copy; {YEAR} {E(company)} &middot; {address_of(company)}</p></footer>
<script>track("page_view");</script>
</body>
</html>
"""


def address_of(company: str) -> str:
    # Deterministic per company, independent of any document's random stream.
    rng = random.Random(f"address:{company}")
    return E(f"{rng.randint(1, 200)} {rng.choice(STREETS)}, {rng.choice(PLACES)}")


def html_announcement(f: Facts) -> tuple[str, str]:
    company, product = f.company(), f.product()
    version = f"{f.integer(2, 6)}.0"
    customer, person = f.company(), f.person()
    plans = [("Starter", 0), ("Team", f.integer(9, 19)), ("Business", f.integer(29, 59))]
    rows = "\n".join(
        f"<tr><td>{name}</td><td>{'Free' if price == 0 else f'&euro;{price} per user'}</td>"
        f"<td>{seats}</td><td>{support}</td></tr>"
        for (name, price), seats, support in zip(
            plans,
            (f"up to {f.integer(3, 5)}", f"up to {f.integer(25, 100)}", "unlimited"),
            ("Community forum", "Email, next business day", "Phone &amp; email, 4 hours"),
            strict=True,
        )
    )
    title = f"Introducing {product} {version}"
    body = f"""
<h1>{E(title)}</h1>
<p class="lede">Today {E(company)} releases {E(product)} {version}, the biggest update since
we launched in {YEAR - f.integer(2, 7)}. It is faster, works offline and costs less for
small teams.</p>
<h2>What&rsquo;s new</h2>
<ul>
<li><strong>Offline mode:</strong> keep working without a connection; changes sync when you
are back online.</li>
<li><strong>{f.integer(2, 5)}&times; faster search</strong> across projects with more than
{f.count(10_000, 90_000)} items.</li>
<li><strong>Shared views</strong> for teams &amp; clients, with read-only links that expire
after {f.integer(7, 30)} days.</li>
<li><strong>Audit log</strong> on the Business plan, kept for {f.integer(12, 36)} months.</li>
</ul>
<h2>Plans &amp; pricing</h2>
<table>
<thead><tr><th>Plan</th><th>Price per month</th><th>Seats</th><th>Support</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>Existing customers on the Team plan move to the new pricing on {f.date()}; nobody pays
more than they do today for the first {f.integer(6, 12)} months.</p>
<h2>What customers say</h2>
<blockquote><p>&ldquo;We moved {f.integer(40, 400)} people to {E(product)} {version} during
the beta and cut the time spent on weekly reporting by {f.pct(20, 60)}.&rdquo;
&mdash; {E(person)}, {E(f.pick(ROLES))} at {E(customer)}</p></blockquote>
<h2>Availability</h2>
<p>{E(product)} {version} is available now for web, Windows &amp; macOS, and reaches the
mobile app stores on {f.date()}. Read the <a href="/docs/upgrade">upgrade guide</a> or
contact our sales team in {E(f.place())}.</p>
"""
    return title, html_page(title, "launch", body, company)


def html_blog(f: Facts) -> tuple[str, str]:
    company, author = f.company(), f.person()
    topic = f.integer(0, 2)
    before = f.integer(30, 90)
    after = before * f.integer(25, 70) // 100
    metric, unit = (
        ("build time", "minutes"),
        ("cloud bill", "thousand dollars a month"),
        ("delivery failures", "per thousand parcels"),
    )[topic]
    title = f"How we cut our {metric} from {before} to {after} {unit}"
    steps = (
        (
            "Measured first: every build step now reports its duration to a dashboard.",
            "Cached dependencies between runs instead of downloading them every time.",
            "Split the test suite into {n} shards that run in parallel.",
            "Deleted {n} end-to-end tests that duplicated unit tests.",
        ),
        (
            "Tagged every resource with an owner, so each team sees its own costs.",
            "Turned off {n} test environments at night and at weekends.",
            "Moved cold data older than {n} months to archive storage.",
            "Bought reserved capacity for {n} months to cover the steady workload.",
        ),
        (
            "Asked customers for a safe place to leave parcels at checkout.",
            "Gave drivers a photo step for every doorstep delivery.",
            "Cleaned {n} thousand addresses with the postal database.",
            "Moved the cut-off for next-day delivery {n} hours earlier at busy depots.",
        ),
    )[topic]
    items = "\n".join(f"<li>{E(step.replace('{n}', str(f.integer(2, 12))))}</li>" for step in steps)
    months = [MONTHS[i] for i in sorted(f.rng.sample(range(12), 4))]
    values = sorted((f.integer(after, before) for _ in range(2)), reverse=True)
    table_rows = "\n".join(
        f"<tr><td>{m} {YEAR}</td><td>{v}</td></tr>"
        for m, v in zip(months, (before, *values, after), strict=True)
    )
    body = f"""
<article>
<h1>{E(title)}</h1>
<p class="byline">By {E(author)}, {E(f.team())} team &middot; {f.date()} &middot;
{f.integer(4, 9)} min read</p>
<p>A year ago our {metric} stood at {before} {unit}, and it was getting worse every month.
At {E(company)} that is not just an engineering problem: it slows down everyone from
{E(f.team())} to {E(f.team())}. This post explains what we changed &mdash; and what did not
work.</p>
<h2>What we did</h2>
<ol>
{items}
</ol>
<p>None of these steps is clever on its own. The gain came from doing all of them and from
checking the numbers every week. {E(f.person())} kept a simple spreadsheet &amp; shared it
in our Monday meeting.</p>
<h2>Results</h2>
<table>
<caption>{E(metric.capitalize())} ({E(unit)})</caption>
<thead><tr><th>Month</th><th>Value</th></tr></thead>
<tbody>
{table_rows}
</tbody>
</table>
<p>The last step saved the most, about {f.pct(20, 45)} of the total, but it only worked
because the earlier ones made the problem visible. Our partners at {E(f.company())} have since
copied the approach in {E(f.place())}.</p>
<h2>What did not work</h2>
<p>We spent {f.integer(3, 8)} weeks on a rewrite that we eventually abandoned. Small,
measured changes beat the big bang, again. If you try this yourself, start with
<code>measure &gt; change &gt; measure</code> &mdash; you will almost certainly be
surprised.</p>
</article>
"""
    return title, html_page(title, "blog", body, company)


def html_changelog(f: Facts) -> tuple[str, str]:
    company, product = f.company(), f.product()
    major = f.integer(2, 7)
    minor = f.integer(3, 9)
    month = f.integer(4, 12)
    entries = (
        "Added <code>--dry-run</code> to the import command.",
        "Fixed a crash when a CSV file contained more than {n} columns.",
        "Exports now include the <code>created_at</code> field.",
        "Improved page load time on the dashboard by {pct}.",
        "Fixed time zones in scheduled reports for users in {place}.",
        "Added support for SAML &amp; OIDC single sign-on.",
        "The API returns <code>429</code> with a <code>Retry-After</code> header when "
        "rate-limited.",
        "Fixed rounding of totals above &euro;{n},000 in invoices.",
        "Search now matches accented names (e.g. &ldquo;Jos&eacute;&rdquo;).",
        "Reduced memory use of the sync agent by {pct}.",
    )
    sections = []
    for step in range(3):
        version = f"{major}.{minor - step}.0"
        picked = f.sample(entries, f.integer(3, 4))
        items = "\n".join(
            "<li>"
            + item.replace("{n}", str(f.integer(2, 90)))
            .replace("{pct}", f.pct(10, 45))
            .replace("{place}", E(f.place()))
            + "</li>"
            for item in picked
        )
        sections.append(
            f"<h2>{version} &mdash; {f.date(max(1, month - 2 * step))}</h2>\n<ul>\n{items}\n</ul>"
        )
    deprecations = "\n".join(
        f"<tr><td><code>{name}</code></td><td>{f.date(min(12, month + 2))}</td>"
        f"<td>{E(replacement)}</td></tr>"
        for name, replacement in (
            ("/v1/export", "/v2/exports (asynchronous)"),
            ("legacy_token", "OAuth client credentials"),
        )
    )
    title = f"{product} changelog"
    body = f"""
<h1>{E(title)}</h1>
<p>All notable changes to {E(product)}, newest first. Questions? Write to
{E(f.person())} on the developer forum.</p>
{chr(10).join(sections)}
<h2>Deprecations</h2>
<p>The following will be removed. Calls after the removal date return
<code>410 Gone</code>.</p>
<table>
<thead><tr><th>Feature</th><th>Removal date</th><th>Use instead</th></tr></thead>
<tbody>
{deprecations}
</tbody>
</table>
<p>Customers with more than {f.count(1000, 50_000)} calls a day to deprecated endpoints will
be contacted by {E(f.person())} before {f.date(min(12, month + 1))}.</p>
"""
    return title, html_page(title, "changelog", body, company)


HTML_MAKERS: tuple[tuple[str, Callable[[Facts], tuple[str, str]]], ...] = (
    ("announcement", html_announcement),
    ("blog", html_blog),
    ("changelog", html_changelog),
)

# --------------------------------------------------------------------------------------------
# Long reports: sentence banks combined with fresh facts into distinct paragraphs
# --------------------------------------------------------------------------------------------

BANKS: dict[str, tuple[str, ...]] = {
    "volume": (
        "Order volume in {period} reached {big} orders, {pct} above the same period last year.",
        "{site} handled the largest share of new volume, peaking at {count} orders a day, while "
        "the other sites stayed close to forecast.",
        "Same-day fulfilment held at {hi_pct} across the network, against a target of 95.0%.",
        "The backlog of unpicked orders peaked at {count} on {date}, when a promotion by "
        "{customer} doubled inbound orders for two days.",
        "Average order size fell from {dec} to {dec} lines, which raises handling cost per unit "
        "even when total volume is flat.",
        "Returns accounted for {pct} of shipped orders, mostly apparel for {customer}, and took "
        "{days} days on average to process.",
        "{person}, who leads fulfilment planning, expects volume to grow by a further {pct} as "
        "{customer} moves its remaining product lines to us.",
        "Cancellations after picking cost roughly {money} in wasted labour, down from {money} a "
        "year earlier.",
        "Orders flagged for manual review dropped to {count} after the address validation rules "
        "were tightened on {date}.",
        "Weekend volume now makes up {pct} of the weekly total, so the weekend shift at {site} "
        "was extended by {n} hours.",
        "Pre-orders for the autumn range opened on {date} and reached {count} units in the first "
        "week.",
        "The fulfilment error rate, measured as wrong or missing items per thousand orders, "
        "moved from {dec} to {dec}.",
    ),
    "warehouse": (
        "Pick rates at {site} averaged {n}{n} lines per labour hour, up {pct} after the new "
        "slotting plan went live on {date}.",
        "The conveyor extension at {site} was commissioned {days} days late because a motor "
        "controller from {vendor} failed acceptance testing.",
        "Dock-to-stock time, from truck arrival to stock available for picking, averaged {hours} "
        "hours across the network.",
        "{site} ran at {hi_pct} of rack capacity for most of the period, so overflow pallets were "
        "stored with a third party in {place} at {money} a week.",
        "Cycle counts found inventory accuracy of {hi_pct}, with most discrepancies in small, "
        "high-value items.",
        "{person} trialled voice picking with {n} pickers on the night shift; error rates fell "
        "but speed did not change measurably.",
        "Forklift downtime totalled {hours} hours, mostly battery faults on the older fleet, "
        "which {vendor} will replace by {date}.",
        "Replenishment moves rose to {count} a week as faster-selling lines were moved closer to "
        "the packing benches.",
        "Packaging waste per order fell by {pct} after {site} switched to right-sized cartons "
        "supplied by {vendor}.",
        "The mezzanine project at {site} received planning approval on {date}; construction is "
        "estimated at {money_m}.",
        "Temperature excursions in the chilled zone at {site} were logged {n} times, each "
        "resolved within {minutes} minutes.",
    ),
    "transport": (
        "On-time delivery was {hi_pct} for parcels and {hi_pct} for pallet freight, against "
        "targets of 96% and 92%.",
        "{vendor} carried {pct} of parcels; its failed-first-attempt rate of {pct} remains the "
        "highest of our carriers.",
        "Fuel surcharges added {money} to transport costs, about {pct} more than budgeted.",
        "The new trunk route between {site_pair} runs {n} times a week and cut line-haul "
        "cost per pallet by {pct}.",
        "Driver shortages in {place} delayed collections on {n} days in {month}, affecting about "
        "{count} shipments.",
        "Average cost per parcel came to {money_small}, compared with {money_small} in the "
        "previous period.",
        "Claims for goods damaged in transit totalled {money}, of which {pct} was recovered "
        "from carriers.",
        "{person} renegotiated the contract with {vendor}, fixing rates until {date} in exchange "
        "for a minimum of {count} parcels a week.",
        "Electric vans now make {pct} of urban deliveries around {site}, and charging has not "
        "yet limited routes.",
        "Delivery complaints fell to {count}, the lowest figure since the network was reorganised.",
        "Cross-border shipments were held at customs for up to {days} days after new paperwork "
        "rules took effect on {date}.",
    ),
    "people": (
        "Headcount ended the period at {count} permanent staff and {count} agency workers.",
        "Staff turnover was {pct} on an annualised basis, highest among first-year pickers at "
        "{site}.",
        "{person} joined as head of {team} on {date}, replacing {person}, who moved to the "
        "{team} team.",
        "There were {n} reportable safety incidents, none serious; the most common cause was "
        "manual handling in the returns area.",
        "The lost-time injury rate stood at {dec} per million hours worked, down from {dec}.",
        "Overtime cost {money}, {pct} over budget, mostly in the two weeks after {date}.",
        "{count} employees completed forklift or first-aid training, and {n} supervisors "
        "finished the leadership course run with {vendor}.",
        "Absence averaged {dec} days per employee, with a short spike in {month} linked to a "
        "seasonal flu outbreak.",
        "The engagement survey had a response rate of {share}; scores for workload and "
        "recognition improved, while scores for communication fell.",
        "Agency rates rose by {pct} in {place}, which makes permanent hiring at {site} cheaper "
        "from the third month onwards.",
        "A new shift pattern at {site}, four days on and four days off, was agreed with "
        "employee representatives on {date}.",
    ),
    "customers": (
        "Customer satisfaction averaged {hi_pct}, and the net promoter score moved from {nps} to "
        "{nps}.",
        "The support team handled {big} contacts, {share} of them by chat, with a median first "
        "response time of {minutes} minutes.",
        "{customer} raised a formal complaint on {date} about repeated late deliveries to its "
        "{place} store; a recovery plan was agreed with {person}.",
        "The most common contact reason was 'where is my order', at {pct} of volume, followed "
        "by returns and refunds.",
        "Self-service tracking pages received {big} visits, reducing calls by an estimated "
        "{count} a month.",
        "Two new enterprise customers, {customer} and {customer}, went live during the period.",
        "Contract renewals were {hi_pct} by value; {customer} did not renew, citing price.",
        "Refunds and service credits totalled {money}, {pct} lower than in the previous period.",
        "{person} introduced a weekly review of the ten oldest open cases, which cut the "
        "average case age from {days} to {days} days.",
        "Feedback from {customer} praised the new delivery slot options, and it has asked to "
        "extend them to {place}.",
        "Complaints escalated to senior management fell to {n}, all of which were closed "
        "within {days} working days.",
    ),
    "finance": (
        "Operating costs for the period were {money_m}, {pct} under budget, largely because the "
        "expansion at {site} started later than planned.",
        "Revenue rose to {money_m}, driven by volume from {customer} and price increases that "
        "took effect on {date}.",
        "Cost per order moved from {money_small} to {money_small} as fixed costs were spread "
        "over higher volume.",
        "Capital spending was {money_m}, mainly the conveyor extension at {site} and new "
        "handheld scanners.",
        "Energy costs came to {money}, {pct} above last year despite lower consumption, "
        "because the fixed-price contract ended on {date}.",
        "{cfo} has asked each site to find savings of at least {pct} before next year's "
        "budgets are set on {date}.",
        "Debtor days improved to {days} after {person} took over credit control.",
        "Gross margin was {pct}, compared with {pct} in the same period last year.",
        "Agency labour remains the largest variable cost at {money_m}, or {pct} of operating "
        "spend.",
        "A one-off charge of {money} was booked for the early termination of the lease in {place}.",
        "Cash at the end of the period stood at {money_m}, with an undrawn credit facility of "
        "{money_m}.",
    ),
    "technology": (
        "The migration of the warehouse management system to {product} reached {share} of "
        "sites; {site} moves next.",
        "System availability was {uptime}, short of the 99.9% target because of an outage on "
        "{date} that lasted {minutes} minutes.",
        "Handheld scanners from {vendor} were replaced at {site}; {count} old devices were "
        "retired and recycled.",
        "{person} led the rollout of automated carrier selection, which now picks the cheapest "
        "on-time carrier for {pct} of parcels.",
        "The data team published a daily dashboard of pick rates, dock times and backlog, now "
        "used by {n} site managers.",
        "A penetration test by {vendor} found {n} medium-severity issues, all fixed by {date}.",
        "Label printing failures dropped by {pct} after printer firmware was updated across "
        "the network.",
        "The integration with the ordering system of {customer} went live on {date}, replacing "
        "nightly file transfers with real-time messages.",
        "Licence costs for {product} rose to {money} a year after the vendor changed its "
        "pricing model.",
        "Engineers in {team} spent about {pct} of their time on unplanned work, mostly support "
        "for the old label system.",
        "Single sign-on now covers {n} internal applications; the rest are scheduled for {month}.",
    ),
    "risks": (
        "The largest risk remains dependence on {vendor} for {pct} of parcel volume; a second "
        "carrier is being onboarded in {place}.",
        "Rack inspections at {site} found {n} damaged uprights, repaired by {date}; a full "
        "inspection is due in {month}.",
        "Labour is scarce in {place}, and agencies warn they may fill only {share} of requested "
        "shifts at peak.",
        "The lease at {site} expires on {date}; negotiations with the landlord, represented by "
        "{person}, are ongoing.",
        "A prolonged outage of {product} would stop picking at every site; a manual fallback was "
        "tested on {date} and took {hours} hours to start.",
        "Exchange-rate movements could add {money} to the cost of imported packaging if the "
        "current rate holds.",
        "New packaging regulations taking effect on {date} will require labelling changes at "
        "all sites.",
        "{customer} accounts for {pct} of revenue; losing it would leave {site} underused.",
        "Flood risk at {site} was reassessed after heavy rain on {date}; the insurer, {vendor}, "
        "requires new drainage by {month}.",
        "Completion of cyber-security training stands at {share}, below the level required by "
        "our insurer.",
    ),
    "sustainability": (
        "Scope 1 and 2 emissions fell to {count} tonnes of CO2 equivalent, {pct} lower than in "
        "the baseline year.",
        "Rooftop solar panels at {site} generated {count} MWh, covering {pct} of the site's "
        "electricity use.",
        "{share} of packaging by weight is now recycled or recyclable, up from {pct}.",
        "The electric van fleet grew to {n}{n} vehicles, and {person} plans to add more once "
        "charging at {site} is upgraded.",
        "Waste sent to landfill dropped to {count} tonnes after cardboard baling was introduced "
        "at {site}.",
        "A supplier survey found that {pct} of our largest suppliers now report their own "
        "emissions.",
        "Water use at {site} fell by {pct} after leaks in the sprinkler system were repaired in "
        "{month}.",
        "We joined a regional freight consolidation scheme in {place}, which cut empty running "
        "by an estimated {pct}.",
        "The sustainability committee, chaired by {person}, approved a target of net-zero "
        "operations by 2035.",
        "LED lighting retrofits at {site} will cost {money} and pay back in about {n} years.",
    ),
    "product": (
        "{product} launched on {date} and signed {count} customers in its first {days} days.",
        "The mobile app reached {big} monthly active users, with a store rating of {rating} out "
        "of 5.",
        "{person} led the redesign of the checkout flow, which raised conversion by {pct}.",
        "Use of the reporting module grew {pct}, but only {pct} of customers use scheduled "
        "exports.",
        "A pilot with {customer} tested same-day delivery slots in {place}; {pct} of its orders "
        "chose the new option.",
        "The pricing change on {date} moved {pct} of customers from the basic to the standard "
        "plan.",
        "{n} features were retired after usage fell below {pct} of active accounts.",
        "Customer interviews, run by {person} with {n}{n} accounts, showed that bulk editing was "
        "the most requested improvement.",
        "The public API now handles {big} requests a day, and the partner programme has {n}{n} "
        "certified integrators.",
        "Release frequency rose to {n}{n} releases a month while the change-failure rate stayed "
        "at {pct}.",
    ),
    "regional": (
        "{site} delivered revenue of {site_revenue}, {pct} above the previous year.",
        "The site team, led by {person}, handled {big} orders with an on-time rate of {hi_pct}.",
        "Headcount at {site} grew to {count} after the second shift started on {date}.",
        "{site} won the company safety award, with no lost-time injuries for {days}{n} days.",
        "Cost per order at {site} was {money_small}, helped by the automation installed last year.",
        "The largest customer served from {site} is {customer}, at {pct} of the site's volume.",
        "Recruitment at {site} remains difficult; {n} vacancies have been open for more than "
        "{n} weeks.",
        "A community open day at {site} on {date} drew about {count} visitors from {place}.",
        "Energy use at {site} fell by {pct} after the heating controls were replaced.",
        "{site} will pilot the new returns process from {month}, before it is rolled out "
        "elsewhere.",
        "{person}, who manages the inbound team at {site}, cut average unloading time to "
        "{minutes} minutes per trailer.",
    ),
    "letter": (
        "This was a year of steady progress for {company}, and I want to thank our {employees} "
        "colleagues for it.",
        "Revenue grew to {revenue}, and for the first time every site made a positive "
        "contribution.",
        "We opened our site in {site} on {date}, on time and {pct} under budget.",
        "Our customers noticed: the net promoter score rose from {nps} to {nps}.",
        "Not everything went to plan. The outage on {date} let down customers such as "
        "{customer}, and we have invested {money} to prevent a repeat.",
        "We said goodbye to {person}, who retired after {tenure} years, and welcomed {person} as "
        "our new {role}.",
        "Safety remains our first priority; the lost-time injury rate fell to {dec} per million "
        "hours worked.",
        "We also made real progress on emissions, which fell by {pct} against the baseline.",
        "Next year we will focus on automation at {site} and on growing with customers in {place}.",
        "I am grateful to our board, chaired by {chair}, for its support and challenge.",
    ),
    "outlook": (
        "We expect revenue growth of {pct} to {pct} next year, assuming volumes from {customer} "
        "continue as contracted.",
        "Capital spending is planned at {money_m}, most of it for automation at {site}.",
        "Hiring will focus on engineers and maintenance technicians; we plan to add {n}{n} "
        "roles in {place}.",
        "Energy prices remain the largest uncertainty in the budget, with a range of {money} "
        "either way.",
        "A decision on a new site near {place} is expected by {date}.",
        "We will renegotiate the contract with {vendor}, which expires on {date}.",
        "Our target is to reach {hi_pct} on-time delivery across the network by the fourth "
        "quarter.",
        "{person} will lead a review of the product range, due to report on {date}.",
        "We do not expect to need additional financing; the credit facility of {money_m} "
        "remains undrawn.",
        "The next annual meeting will be held in {place} on {date}.",
    ),
    "ops_generic": (
        "Figures for {month} were revised after late invoices from {vendor} arrived.",
        "{person} will present a fuller analysis to the leadership team on {date}.",
        "The trend is encouraging, but one period is not enough to tell whether it will last.",
        "Further detail is available from {person} in the {team} team.",
        "Site managers at {site_pair} have been asked to share what worked.",
        "The target for the next period has been set at {pct}.",
        "Part of the change reflects a new measurement method introduced on {date}, so "
        "comparisons should be made with care.",
        "The figure excludes {count} orders handled by the temporary site in {place}.",
        "The {team} team will review progress monthly and report exceptions to {person}.",
        "None of these issues affected statutory reporting or customer contracts.",
    ),
    "background": (
        "{service} processes payments and order updates for {merchants} merchants and handles "
        "about {rps} requests a second at peak.",
        "It runs as {instances} stateless instances behind a load balancer in two regions, "
        "{regions}.",
        "Each instance keeps a pool of database connections to a primary database hosted by "
        "{vendor}.",
        "The service was last re-architected in {rearchitected}, when the team led by "
        "{architect} split it out of the monolith.",
        "Health checks call an endpoint that runs a trivial database query, so a starved "
        "connection pool makes a healthy instance look dead.",
        "Code deployments use a canary that receives {canary} of traffic for {canary_minutes} "
        "minutes before a full rollout.",
        "Configuration lives in a separate repository and is deployed independently of the "
        "code, with its own review rules.",
        "The service has had {sev2} SEV-2 incidents in the past twelve months but no SEV-1 "
        "before this one.",
        "Enterprise customers such as {customer} call the service from nightly batch jobs that "
        "can send {count} requests in a few minutes.",
        "Ownership sits with the {owner_team} team, whose on-call rotation has {rota} engineers.",
    ),
    "impact": (
        "Between {start} and {end} UTC, {pct} of API requests to {service} failed with HTTP 503 "
        "errors.",
        "Approximately {count} merchants were affected, including {customer}, whose batch "
        "imports failed and had to be rerun.",
        "Requests that did succeed took a median of {dec} seconds, compared with 0.4 seconds "
        "normally.",
        "{count} payment attempts were declined or timed out; {pct} of those customers retried "
        "successfully within an hour.",
        "Support received {count} tickets and {count} chat contacts during the incident, about "
        "{n} times the usual volume.",
        "Service credits owed under enterprise agreements are estimated at {money}.",
        "No data was lost, but {count} webhook deliveries were delayed by up to {hours} hours.",
        "The status page was updated {n} times; the first update went out {minutes} minutes "
        "after the first alert.",
        "Internal tools that depend on {service}, including the billing dashboard, were also "
        "unavailable.",
        "Mobile clients retried aggressively, which multiplied traffic by about {n} times at the "
        "peak.",
        "Merchants in {place} were hit hardest because their evening peak coincided with the "
        "outage.",
    ),
    "segment": (
        "For {segment}, {share} of requests failed at the peak of the outage.",
        "Around {count} {segment} contacted support, most of them within the first hour.",
        "The largest of the affected {segment}, {customer}, lost an estimated {money} in sales.",
        "Requests from {segment} recovered more slowly than average, about {minutes} minutes "
        "after the rollback.",
        "Among {segment}, retries succeeded for {share} of failed operations without manual "
        "action.",
        "Service credits for {segment} are estimated at {money}.",
        "Our account team, led by {person}, called the {n}{n} largest {segment} the next morning.",
        "No {segment} reported duplicate charges, which the idempotency checks are designed to "
        "prevent.",
        "Error rates for {segment} in {place} were about twice the average because of their "
        "evening peak.",
        "Feedback from {segment} focused on the lack of detail in the first status updates.",
    ),
    "detection": (
        "The first alert, a latency warning for {service}, fired at {start} UTC and paged "
        "{oncall}, the on-call engineer.",
        "Error-rate alerts stayed silent for the first {minutes} minutes because the 5% "
        "threshold was averaged over 15 minutes.",
        "{customer} reported the problem through its account manager {minutes} minutes before "
        "our own monitoring escalated it.",
        "Synthetic checks from {place} and {place} failed from {start}, but they page only after "
        "three consecutive failures.",
        "The database dashboard showed connection counts at the configured maximum, which was "
        "the first clear signal of the cause.",
        "{person} declared a SEV-1 incident and opened the incident channel {minutes} minutes "
        "after the first page.",
        "Log volume rose {n}-fold within minutes, which slowed the logging system and made "
        "diagnosis harder.",
        "A canary deployment had shown a small rise in errors {hours} hours earlier, but within "
        "the canary's tolerance.",
        "Responders first suspected the load balancer because of a similar incident on {date}, "
        "which cost about {minutes} minutes.",
        "{person} noticed that only instances started after {change_time} UTC were failing, which "
        "pointed to the configuration change.",
    ),
    "diagnosis": (
        "The first hypothesis was a network problem between the regions, because errors began "
        "in {place} a few minutes before they appeared elsewhere.",
        "{oncall} compared the failing instances with healthy ones and found no difference in "
        "code version, which ruled out the deploy of {date}.",
        "Thread dumps from {n} instances showed most worker threads waiting for a database "
        "connection.",
        "{person} queried the database for active sessions and counted {count}, far fewer than "
        "the number of waiting requests.",
        "The configuration history showed a single change in the previous {hours} hours: the "
        "pool setting deployed at {change_time} UTC.",
        "Reproducing the failure in staging took {minutes} minutes, using a recording of "
        "production traffic replayed at {n} times normal speed.",
        "Engineers from {team} confirmed that the export of {exporter} had started on schedule "
        "and was not itself faulty.",
        "The load balancer logs showed {count} instance removals in {minutes} minutes, each "
        "after three failed health checks.",
        "By {mid} UTC the team was confident of the cause and agreed to roll back rather than "
        "raise the pool size in place.",
    ),
    "root_cause": (
        "The root cause was a change to the connection pool of {service}, deployed at "
        "{change_time} UTC, that cut the pool to {n} connections per instance.",
        "Under normal load the smaller pool was enough, but a batch export started by "
        "{exporter} doubled the number of concurrent queries.",
        "Requests waiting for a connection held worker threads, so health checks timed out and "
        "the load balancer removed healthy instances.",
        "As instances were removed, the remaining ones received more traffic and failed faster, "
        "a classic cascading failure.",
        "The configuration change was part of ticket {ticket}, intended to reduce database load "
        "ahead of the migration to {product}.",
        "The change was reviewed by {person}, but the review checklist did not ask for load-test "
        "evidence for configuration changes.",
        "Automatic scaling added {n} instances, each of which opened new connections and pushed "
        "the database towards its limit.",
        "The database itself, hosted by {vendor}, stayed healthy throughout, with CPU below {pct}.",
        "A retry policy without jitter in the mobile client made traffic arrive in synchronised "
        "waves every {n} seconds.",
        "The runbook for connection exhaustion pointed to a dashboard that had been renamed in "
        "{month}, which cost the responders time.",
    ),
    "contributing": (
        "Configuration changes did not go through the canary process used for code, so the "
        "change reached all instances at once.",
        "Load tests before the change used a dataset {pct} smaller than production.",
        "The health check tested the database path, turning a capacity problem into an "
        "availability problem.",
        "Nobody on the first response team had worked on the connection pool code; the expert, "
        "{person}, was in another time zone.",
        "The batch schedule of {exporter} is not visible to the team, so nobody linked its "
        "export to the load pattern.",
        "Alert thresholds averaged over 15 minutes were too slow to catch a sudden failure.",
        "The same pool setting had been lowered once before, in {month} {prev_year}, and raised "
        "again without a written explanation.",
        "Dashboards for {service} show averages; percentiles would have revealed the slowdown "
        "{minutes} minutes sooner.",
        "The incident fell during a shift change, and the hand-over note did not mention the "
        "configuration deploy.",
    ),
    "response": (
        "At {mid} UTC {person} rolled back the configuration change, but recovery was slow "
        "because instances restarted one at a time.",
        "{person} disabled the export job for {exporter} at {mid} UTC, with the customer's "
        "agreement.",
        "The team raised the health-check timeout from 2 to {n} seconds to stop healthy "
        "instances being removed.",
        "Full service was restored at {end} UTC, {duration} minutes after the first alert.",
        "{person} acted as incident commander, {person} handled customer communication and "
        "{person} led the technical investigation.",
        "Rate limits for the mobile client were lowered temporarily to {count} requests per "
        "minute per user.",
        "A backlog of {count} queued jobs drained in {minutes} minutes after recovery, with no "
        "manual intervention.",
        "Customer success contacted the {n}{n} largest affected accounts personally before the "
        "end of the day.",
        "The incident channel had {count} messages; a scribe, {person}, kept the timeline this "
        "document is based on.",
        "Engineers from {team} joined without being paged, which helped, although their work "
        "was not recorded in the channel.",
    ),
    "communication": (
        "The first status page update, at {mid} UTC, said only that the team was investigating "
        "elevated errors.",
        "Enterprise customers such as {customer} received direct emails from their account "
        "managers within {minutes} minutes.",
        "A detailed customer-facing summary was published on {date}, written by {person}.",
        "The status page template lacked a field for affected regions, so early updates were "
        "vague.",
        "Support agents used a macro drafted during the incident; it was sent {count} times.",
        "{customer} asked for a call with engineering, which {person} held on {date}.",
        "Social media mentions of the outage peaked at {count} an hour, mostly from merchants "
        "in {place}.",
        "Internal updates went to the company channel every {n}{n} minutes, which leadership "
        "found helpful.",
    ),
    "went_well": (
        "The rollback procedure worked as designed and took {minutes} minutes from decision to "
        "completion.",
        "Communication with {customer} was prompt, and its account manager, {person}, was "
        "praised for keeping it informed.",
        "The incident commander role was clear from the start, and {person} handed it over "
        "cleanly at {mid} UTC.",
        "Feature flags let the team disable non-essential background jobs within {minutes} "
        "minutes.",
        "The database provider, {vendor}, answered our support request in under {minutes} minutes.",
        "No data was lost or corrupted, thanks to idempotent payment processing introduced in "
        "{month} {prev_year}.",
        "The scribe's timeline was detailed enough that this review needed only {n} follow-up "
        "interviews.",
        "Engineers who were not on call offered help in the channel without creating noise.",
    ),
    "went_poorly": (
        "It took {minutes} minutes to connect the outage to the configuration change.",
        "Disabling a customer's job required approval from {person}, who was travelling and was "
        "reached only after {minutes} minutes.",
        "The runbook was out of date and pointed to a dashboard that no longer exists.",
        "The status page understated the impact for the first {minutes} minutes.",
        "Two engineers restarted instances at the same time without telling each other, which "
        "briefly made things worse.",
        "Alerts from {n} unrelated services fired during the incident and distracted the "
        "responders.",
        "The on-call engineer's laptop needed a VPN update before it could reach the production "
        "dashboards, costing {minutes} minutes.",
        "Customer success did not have a list of affected merchants until {end} UTC.",
    ),
    "incident_generic": (
        "This was confirmed later from the load balancer logs.",
        "{person} noted this in the incident channel at the time.",
        "The exact figure is still being reconciled with the {team} team.",
        "Logs older than {days} days are not kept, so we cannot tell whether this happened before.",
        "This is tracked as {ticket}.",
        "{person} has volunteered to own the follow-up.",
        "The same pattern appeared in a smaller incident on {date}.",
        "We have asked {vendor} for its own timeline of events.",
    ),
    "intro": (
        "On-call work keeps software running at night, but its cost to the people doing it is "
        "rarely measured.",
        "This survey, run by {institution}, asked engineers at {orgs} organisations how on-call "
        "duty affects their work and wellbeing.",
        "Earlier studies, notably by {prior} and colleagues, relied on interviews at a single "
        "company.",
        "We set out to measure paging load directly, from incident-management data, instead of "
        "relying on recall alone.",
        "The work was funded by a grant of {grant} from the {funder} Foundation for Working Life.",
        "Our questions were shaped by a pilot with {pilot}.",
        "We focus on three areas: paging load, wellbeing and the practices organisations use "
        "to manage both.",
        "The report is written for engineering managers as much as for researchers.",
        "We thank the {respondents} respondents, and {person} for help with recruitment.",
    ),
    "methods": (
        "We invited {invited} engineers from {orgs} organisations to complete an online "
        "questionnaire between {fieldwork}.",
        "The questionnaire had {n} sections and took a median of {minutes} minutes to complete.",
        "We followed up with {n}{n} semi-structured interviews, each about {minutes} minutes "
        "long, conducted by {interviewers}.",
        "Transcripts were coded independently by two researchers; agreement, measured by "
        "Cohen's kappa, was 0.{n}{n}.",
        "Responses with more than {pct} of items missing were excluded, leaving {respondents} "
        "complete responses.",
        "Page counts were taken from incident-management exports supplied by {n} organisations, "
        "covering {n} months.",
        "We weighted responses by organisation size so that the largest firms did not dominate "
        "the results.",
        "The study was approved by the ethics board of {institution} under reference {ethics}.",
        "Participants could withdraw at any time; {n} did so, and their data were deleted.",
        "Wellbeing was measured with a {items}-item index scored from 0 to 100.",
    ),
    "load": (
        "The median engineer received {n}{n} pages per on-call week, while the top tenth "
        "received more than {count}.",
        "{pct} of pages arrived outside working hours, and {pct} of those between midnight and "
        "06:00.",
        "Engineers at organisations with a dedicated platform team reported {pct} fewer "
        "out-of-hours pages.",
        "Respondents estimated that {pct} of pages required no action, close to the {pct} found "
        "in incident exports.",
        "At {company}, one of the participating firms, paging volume fell by {pct} after a "
        "quarterly alert clean-up.",
        "Teams that owned more than {n} services had almost twice the page volume of teams "
        "owning fewer.",
        "Pages caused by third-party providers, such as {vendor}, made up {pct} of the total.",
        "One interviewee, {person}, described a week with {count} pages as 'the point where I "
        "stopped reading them properly'.",
        "Weekend rotations were shorter at {pct} of organisations, typically {n} days instead of "
        "a full week.",
        "Page volume peaked in {month}, when many organisations run their largest releases.",
    ),
    "wellbeing": (
        "Engineers on call at least one week in four scored {n}.{n} points lower on the "
        "wellbeing index than those on call less often.",
        "{pct} of respondents said on-call duty had disturbed their sleep in the past month.",
        "Pay varied widely: {pct} of organisations paid a fixed weekly stipend, typically "
        "{stipend}, and {pct} paid nothing extra.",
        "Respondents who received time off in lieu after night pages were {pct} less likely to "
        "report symptoms of burnout.",
        "{person}, a staff engineer at {company}, told us that a clear hand-over note mattered "
        "more than the stipend.",
        "Intention to leave within a year was {pct} among engineers on the busiest rotations "
        "and {pct} among the rest.",
        "Managers underestimated the out-of-hours burden, guessing a weekly page count about "
        "{pct} below what their teams reported.",
        "Engineers with caring responsibilities were {pct} more likely to have swapped or given "
        "up on-call shifts.",
        "Free-text answers mentioned anxiety {n}{n} times and isolation {n}{n} times, usually "
        "about night pages handled alone.",
        "Wellbeing scores recovered within about {n} days of the end of an on-call week.",
    ),
    "practice": (
        "{share} of organisations run blameless post-incident reviews, but only {pct} track "
        "whether follow-up actions are completed.",
        "Runbooks existed for {share} of alerting services, and respondents rated {share} of those "
        "as up to date.",
        "Organisations that rehearse incident response in game days resolved incidents {pct} "
        "faster, by their own measure.",
        "Follow-the-sun rotations, used at {n} organisations, almost eliminated night pages but "
        "added hand-over problems.",
        "At {company}, a shadow rotation lets new engineers join {n} on-call weeks before they "
        "are paged themselves.",
        "{pct} of teams had a secondary on-call engineer, and secondaries were paged in {pct} "
        "of incidents.",
        "Automated remediation handled an estimated {pct} of alerts at the most mature "
        "organisations.",
        "Only {n} organisations measured alert quality explicitly, for example as the share of "
        "pages that led to action.",
        "Escalation to management happened in {pct} of severe incidents, usually after about "
        "{minutes} minutes.",
        "Teams using {product} for scheduling reported fewer missed hand-overs than teams using "
        "spreadsheets.",
    ),
    "discussion": (
        "The results suggest that paging volume, not on-call frequency alone, drives the "
        "wellbeing gap.",
        "Our findings agree with the earlier study by {prior} and colleagues, which reported a "
        "similar gap of {n}.{n} points.",
        "Alert hygiene appears to be the cheapest intervention: organisations that reviewed "
        "alerts quarterly cut volume by {pct} on average.",
        "Control seems to matter more than pay: engineers valued the ability to swap shifts more "
        "than a higher stipend.",
        "Larger organisations were not better at on-call; variation within size bands was larger "
        "than between them.",
        "The gap between managers' and engineers' estimates of paging load points to a "
        "visibility problem that simple reporting could fix.",
        "Several interviewees at {company} credited a single champion for improvements, which "
        "raises the question of how durable such changes are.",
        "The low share of organisations tracking follow-up actions suggests that many reviews end "
        "with the document.",
        "Follow-the-sun rotations trade night pages for coordination costs that our survey "
        "could only partly measure.",
    ),
    "band": (
        "Among organisations with {band}, the median engineer received {n}{n} pages per on-call "
        "week.",
        "Respondents from organisations with {band} reported a wellbeing score of {n}{n} out of "
        "100 on average.",
        "In organisations with {band}, {share} of teams had a written runbook for every "
        "alerting service.",
        "Rotations in organisations with {band} had a median of {n} engineers, and {pct} of "
        "respondents were on call one week in three or more often.",
        "{share} of respondents from organisations with {band} said they would recommend their "
        "on-call setup to a friend.",
        "Time off after night pages was offered by {pct} of organisations with {band}.",
        "For organisations with {band}, pages caused by third-party services made up {pct} of "
        "the total.",
        "One manager at an organisation with {band}, {person}, said the rota had been "
        "redesigned {n} times in two years.",
        "Intention to leave among respondents from organisations with {band} was {pct}.",
        "Where organisations with {band} paid a weekly on-call stipend, it was typically "
        "{stipend}.",
    ),
    "limitations": (
        "Participation was voluntary, so organisations with mature practices may be "
        "over-represented.",
        "The incident exports covered only {n} organisations and may not be typical of the "
        "full sample.",
        "Wellbeing was self-reported at a single point in time and may reflect seasonal "
        "factors around {month}.",
        "Most respondents ({pct}) worked in {place} or {place}, so the findings may not transfer "
        "to other labour markets.",
        "We could not verify pay figures, which respondents reported from memory.",
        "Interviewees were recruited through the survey, and {n} of them worked at the same two "
        "organisations.",
        "The questionnaire was available only in English, which may have discouraged some "
        "participants.",
        "Page counts depend on how each organisation configures its tools, which we could not "
        "standardise.",
    ),
    "research_generic": (
        "The difference was statistically significant (p < 0.0{n}).",
        "Confidence intervals are given in the appendix.",
        "This pattern held after controlling for organisation size and sector.",
        "Interview data support this reading.",
        "{person}, one of our reviewers, suggested an alternative explanation, discussed below.",
        "The effect was smaller, about {pct}, among organisations with fewer than {count} "
        "engineers.",
        "We return to this point in the discussion.",
        "Responses from {company} followed the same pattern.",
    ),
}


@dataclass
class Section:
    """One section of a long report: growing paragraphs plus fixed blocks (lists, tables)."""

    heading: str
    bank: str | None
    generic: str | None = None
    fixed: dict[str, str] = field(default_factory=dict)
    before: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    limit: int = 99
    """Most paragraphs to grow, for sections whose bank is small or whose topic is narrow."""

    def words(self) -> int:
        return sum(word_count(block) for block in (*self.before, *self.paragraphs, *self.after))


class ReportWriter:
    """Builds paragraphs from sentence banks, dealing sentences so few repeat within a section."""

    def __init__(self, f: Facts, fixed: dict[str, str], sites: Sequence[str]) -> None:
        self.f = f
        self.fixed = dict(fixed)
        self.sites = list(sites)
        self._decks: dict[str, list[str]] = {}
        self._seen: set[str] = set()
        self.values: dict[str, Callable[[], str]] = {
            "person": f.person,
            "site": lambda: f.pick(self.sites),
            "place": f.place,
            "vendor": f.company,
            "customer": f.company,
            "company": f.company,
            "product": f.product,
            "team": f.team,
            "role": lambda: f.pick(ROLES),
            "date": f.date,
            "month": f.month,
            "period": lambda: self.fixed["period"],
            "pct": lambda: f.pct(1.5, 35),
            "hi_pct": lambda: f.pct(82, 99.4),
            "share": lambda: f.pct(35, 85),
            "uptime": lambda: f"{f.rng.uniform(99.2, 99.89):.2f}%",
            "count": lambda: f.count(120, 9_800),
            "big": lambda: f.count(12_000, 2_400_000),
            "money": lambda: f.money(4_000, 480_000),
            "money_m": lambda: f.money_m(0.4, 48.0),
            "money_small": lambda: f.money_small(1.5, 14.0),
            "dec": lambda: f.dec(1.0, 9.9),
            "rating": lambda: f.dec(3.6, 4.9),
            "nps": lambda: str(f.integer(-10, 70)),
            "n": lambda: str(f.integer(2, 9)),
            "days": lambda: str(f.integer(2, 45)),
            "hours": lambda: str(f.integer(2, 30)),
            "minutes": lambda: str(f.integer(4, 55)),
            "ticket": lambda: f.ticket(f.pick(("OPS", "ENG", "CHG", "RSK"))),
            "prev_year": lambda: str(YEAR - f.integer(1, 3)),
            "stipend": lambda: f.money(100, 600),
            "site_revenue": lambda: f.money_m(4, 40),
            "tenure": lambda: str(f.integer(12, 38)),
            "site_pair": lambda: " and ".join(f.sample(self.sites, 2)),
        }

    def fill(self, template: str, fixed: dict[str, str] | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if fixed and name in fixed:
                return fixed[name]
            if name in self.fixed:
                return self.fixed[name]
            return self.values[name]()

        return _SLOT.sub(value, template)

    def _deal(self, key: str, bank: str) -> str:
        deck = self._decks.setdefault(key, [])
        if not deck:
            deck.extend(BANKS[bank])
            self.f.rng.shuffle(deck)
        return deck.pop()

    def paragraph(self, section: Section) -> str:
        assert section.bank is not None
        key = f"{section.heading}/{section.bank}"
        for _ in range(20):
            count = self.f.integer(3, 5)
            templates: list[str] = []
            while len(templates) < count:
                template = self._deal(key, section.bank)
                if template not in templates:
                    templates.append(template)
            if section.generic and self.f.rng.random() < 0.5:
                position = self.f.integer(1, len(templates))
                templates.insert(position, self._deal(f"generic/{key}", section.generic))
            text = " ".join(self.fill(t, section.fixed) for t in templates)
            if text not in self._seen:
                self._seen.add(text)
                return text
        raise RuntimeError(f"could not write a new paragraph for {section.heading!r}")

    def grow(self, sections: list[Section], target_words: int, fixed_words: int = 0) -> None:
        """Add paragraphs round-robin (two per growing section first) until the target."""
        growing = [s for s in sections if s.bank is not None]
        for section in growing:
            for _ in range(2):
                section.paragraphs.append(self.paragraph(section))
        total = fixed_words + sum(s.words() for s in sections)
        index = 0
        while total < target_words:
            open_sections = [s for s in growing if len(s.paragraphs) < s.limit]
            if not open_sections:
                raise RuntimeError(f"every section is full at {total} of {target_words} words")
            section = open_sections[index % len(open_sections)]
            paragraph = self.paragraph(section)
            section.paragraphs.append(paragraph)
            total += word_count(paragraph)
            index += 1


def render_markdown(title: str, front: list[str], sections: list[Section]) -> str:
    parts = [f"# {title}", *front]
    for number, section in enumerate(sections, start=1):
        parts.append(f"## {number}. {section.heading}")
        parts.extend([*section.before, *section.paragraphs, *section.after])
    return "\n\n".join(parts) + "\n"


def render_text(title: str, front: list[str], sections: list[Section]) -> str:
    parts = [f"{title}\n{'=' * len(title)}", *front]
    for number, section in enumerate(sections, start=1):
        heading = f"{number}. {section.heading.upper()}"
        parts.append(f"{heading}\n{'-' * len(heading)}")
        parts.extend([*section.before, *section.paragraphs, *section.after])
    return "\n\n".join(parts) + "\n"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)]).rstrip()


def report_quarterly(f: Facts, target: int) -> tuple[str, str, str]:
    company = f.company()
    quarter = f.integer(1, 4)
    period = f"Q{quarter} {YEAR}"
    sites = f.sample(PLACES, 5)
    coo, cfo = f.people(2)
    writer = ReportWriter(f, {"period": period, "cfo": cfo}, sites)
    published = (
        f"{f.integer(5, 20)} January {YEAR + 1}" if quarter == 4 else f.date(quarter * 3 + 1)
    )
    title = f"{company}: Quarterly Operations Report, {period}"
    front = [
        "\n".join(
            (
                f"- **Prepared by:** {coo}, Chief Operating Officer",
                f"- **Finance review:** {cfo}, Chief Financial Officer",
                f"- **Date:** {published}",
                "- **Distribution:** executive team, site managers, board operations committee",
                "- **Classification:** internal",
            )
        )
    ]
    key_rows = [
        [site, f.count(40_000, 400_000), f.pct(88, 99), f.money_small(2.5, 9), f.count(80, 900)]
        for site in sites
    ]
    highlights = "\n".join(
        f"- {writer.fill(t)}"
        for t in (
            "Order volume reached {big} orders, {pct} above the same quarter last year.",
            "On-time delivery was {hi_pct} against a target of 96%.",
            "Operating costs were {money_m}, {pct} under budget.",
            "There were {n} reportable safety incidents and no serious injuries.",
        )
    )
    summary = Section(
        "Executive summary",
        None,
        before=[
            f"This report covers operations at the {len(sites)} {company} sites in {period}: "
            f"{', '.join(sites[:-1])} and {sites[-1]}. It is written for the executive team "
            "and the board operations committee, and summarises volume, service, people, "
            "cost, technology and risk. The headline figures are:",
            highlights,
            "Key figures by site:",
            md_table(
                ("Site", "Orders", "On-time delivery", "Cost per order", "Headcount"), key_rows
            ),
        ],
    )
    priorities = "\n".join(
        f"{i}. {writer.fill(t)}"
        for i, t in enumerate(
            (
                "Complete the {product} migration at {site} by {date}.",
                "Bring agency labour below {pct} of hours at {site}.",
                "Sign a second parcel carrier for {place} before peak season.",
                "Reduce cost per order to {money_small} across the network.",
                "Finish rack repairs and the full inspection at {site}.",
            ),
            start=1,
        )
    )
    sections = [
        summary,
        Section("Order volume and fulfilment", "volume", "ops_generic"),
        Section("Warehouse operations", "warehouse", "ops_generic"),
        Section("Transport and delivery", "transport", "ops_generic"),
        Section("People and safety", "people", "ops_generic"),
        Section("Customer service", "customers", "ops_generic"),
        Section("Costs and budget", "finance", "ops_generic"),
        Section("Technology and systems", "technology", "ops_generic"),
        *(Section(f"Site focus: {site}", "regional", fixed={"site": site}) for site in sites),
        Section("Sustainability", "sustainability", "ops_generic"),
        Section("Risks and issues", "risks", "ops_generic"),
        Section("Priorities for next quarter", None, before=[priorities]),
    ]
    writer.grow(sections, target)
    slug = f"{slugify(company)}-quarterly-operations-q{quarter}-{YEAR}"
    return slug, "md", render_markdown(title, front, sections)


def report_postmortem(f: Facts, target: int) -> tuple[str, str, str]:
    company = f.company()
    service = f"{f.product()} API"
    month = f.integer(1, 12)
    incident_date = f.date(month)
    start = f.integer(6 * 60, 19 * 60)
    duration = f.integer(70, 260)
    change = start - f.integer(20, 90)
    mid = start + duration // 2
    people = f.people(6)
    fixed = {
        "service": service,
        "start": clock(start),
        "end": clock(start + duration),
        "mid": clock(mid),
        "change_time": clock(change),
        "duration": str(duration),
        "period": incident_date,
        "oncall": people[3],
        "architect": people[4],
        "vendor": f.company(),
        "exporter": f.company(),
        "owner_team": f.team(),
        "merchants": f.count(20_000, 400_000),
        "rps": f.count(800, 9_000),
        "instances": str(f.integer(24, 96)),
        "regions": " and ".join(f.sample(PLACES, 2)),
        "rearchitected": f"{f.month()} {YEAR - f.integer(1, 3)}",
        "canary": f.pct(1, 10),
        "canary_minutes": str(f.integer(10, 30)),
        "sev2": str(f.integer(2, 7)),
        "rota": str(f.integer(5, 9)),
    }
    writer = ReportWriter(f, fixed, list(PLACES))
    incident_id = f.ticket("INC")
    title = f"Post-incident review: {service} outage on {incident_date}"
    front = [
        "\n".join(
            (
                f"- **Incident:** {incident_id}, severity SEV-1",
                f"- **Duration:** {duration} minutes ({clock(start)} to "
                f"{clock(start + duration)} UTC)",
                f"- **Authors:** {people[0]}, {people[1]}",
                f"- **Incident commander:** {people[2]}",
                f"- **Review meeting:** {f.date(min(12, month + 1))}",
                "- **Status:** final; blameless format",
            )
        )
    ]
    events = (
        "Configuration change {ticket} deployed to all instances of {service}.",
        "Latency warning fires; {oncall} is paged.",
        "{oncall} acknowledges the page and starts investigating.",
        "Error rate passes 20%; the synthetic checks in {place} fail.",
        "SEV-1 declared; incident channel opened.",
        "First status page update published.",
        "Load balancer suspected; its configuration is checked and ruled out.",
        "Database dashboard shows connections at the configured maximum.",
        "{customer} reports failures through its account manager.",
        "Link to the configuration change identified.",
        "Rollback of the configuration change started.",
        "Export job of {exporter} paused with the customer's agreement.",
        "Health-check timeout raised to {n} seconds.",
        "Error rate below 5%; instances returning to rotation.",
        "Queued webhook deliveries start draining.",
        "Error rate back to normal; monitoring continues.",
        "Incident resolved; status page updated.",
    )
    offsets = sorted(f.rng.sample(range(3, duration), len(events) - 3))
    times = [change, start, start + 2, *(start + o for o in offsets[:-1]), start + duration]
    timeline = "\n".join(
        f"- {clock(t)} UTC: {writer.fill(e)}" for t, e in zip(times, events, strict=False)
    )
    actions = f.sample(
        (
            "Route configuration changes through the canary process",
            "Add load-test evidence to the review checklist for pool settings",
            "Make health checks independent of database capacity",
            "Alert on p99 latency over a 2-minute window",
            "Add jitter to mobile client retries",
            "Update the connection-exhaustion runbook and its dashboard links",
            "Share batch schedules of enterprise customers with the on-call team",
            "Add an affected-regions field to the status page template",
            "Pre-approve pausing a customer's batch job during a SEV-1",
        ),
        7,
    )
    action_rows = [
        [f.ticket("ENG"), action, f.pick(people), f.date(min(12, month + f.integer(1, 3)))]
        for action in actions
    ]
    summary = (
        f"On {incident_date}, between {clock(start)} and {clock(start + duration)} UTC, "
        f"{service} at {company} returned errors for a large share of requests. A configuration "
        "change had reduced the database connection pool; under the load of a customer's "
        "batch export the pool was exhausted, health checks failed and the load balancer "
        "removed healthy instances, which overloaded the rest. Service was restored after the "
        "change was rolled back and the batch job was paused. This review follows our "
        "blameless format: it describes what happened and why, not who is to blame."
    )
    sections = [
        Section("Summary", None, before=[summary]),
        Section("Background", "background", limit=3),
        Section("Impact", "impact", "incident_generic"),
        *(
            Section(f"Impact on {segment}", "segment", fixed={"segment": segment}, limit=3)
            for segment in (
                "marketplace sellers",
                "subscription businesses",
                "enterprise batch customers",
                "point-of-sale merchants",
            )
        ),
        Section("Timeline", None, before=["All times are UTC.", timeline]),
        Section("Detection", "detection", "incident_generic"),
        Section("Diagnosis", "diagnosis", "incident_generic"),
        Section("Root cause", "root_cause", "incident_generic"),
        Section("Contributing factors", "contributing", "incident_generic", limit=4),
        Section("Response and recovery", "response", "incident_generic"),
        Section("Customer communication", "communication", "incident_generic", limit=3),
        Section("What went well", "went_well", limit=3),
        Section("What went poorly", "went_poorly", limit=3),
        Section(
            "Action items",
            None,
            before=[
                "Each action has an owner and a due date; progress is reviewed weekly in the "
                "reliability meeting until all are closed.",
                md_table(("Ticket", "Action", "Owner", "Due"), action_rows),
            ],
        ),
        Section(
            "Appendix: incident channel excerpts",
            None,
            before=[
                "Messages from the incident channel, lightly edited for length; times are UTC.",
                *channel_log(f, writer, people, start, duration),
            ],
        ),
    ]
    writer.grow(sections, target)
    slug = f"{slugify(service)}-outage-postmortem-{slugify(incident_date)}"
    return slug, "md", render_markdown(title, front, sections)


CHANNEL_PHASES = (
    (
        "seeing 503s on {service}, error rate {pct} and climbing",
        "p99 latency is over {n} seconds on the checkout path",
        "synthetic checks from {place} are red too",
        "is anyone deploying right now?",
        "nothing in the code deploy log for the last {hours} hours",
        "status page draft ready, can someone approve?",
        "approved, publishing now",
        "support says tickets are coming in fast, {count} so far",
        "load balancer shows instances flapping in and out of rotation",
        "I'm taking incident commander; {person}, can you take comms?",
        "opening a support case with {vendor} just in case it's the database",
        "dashboards are slow to load, the logging cluster is struggling",
        "can we get a count of affected merchants?",
        "error rate now {pct}, this is customer-visible everywhere",
    ),
    (
        "thread dumps show workers blocked waiting for a connection",
        "database CPU is fine at {pct}, it's not the database itself",
        "active sessions on the primary: {count}, well below its maximum",
        "wait, the pool size per instance is {n}? it was 40 last week",
        "found it: config change {ticket} at {change_time} lowered the pool",
        "who reviewed that change? not blaming, just need context",
        "the {exporter} export started at its usual time, that's the load spike",
        "proposal: roll back the config, then pause the export",
        "agreed, rolling back now",
        "account manager is asking {exporter} to pause the export",
        "the autoscaler added {n} more instances, which makes it worse",
        "freezing autoscaling for now",
    ),
    (
        "rollback done on {n} of {instances} instances",
        "restarting the rest one at a time, about {minutes} minutes",
        "error rate down to {pct}",
        "health-check timeout bumped to {n}s as a stopgap",
        "webhook queue draining, {count} left",
        "status page updated: recovering",
        "{exporter} confirms their imports are succeeding again",
        "error rate at baseline",
        "keeping the incident open for {minutes} more minutes of monitoring",
        "I'll write up the timeline from this channel tonight",
        "support macro updated for the follow-up emails",
    ),
)


def channel_log(
    f: Facts, writer: ReportWriter, people: Sequence[str], start: int, duration: int
) -> list[str]:
    """Incident-channel messages in three phases (investigation, diagnosis, recovery)."""
    blocks = []
    for phase, messages in enumerate(CHANNEL_PHASES):
        lo = start + duration * phase // 3
        hi = start + duration * (phase + 1) // 3
        picked = f.sample(messages, f.integer(len(messages) - 4, len(messages)))
        times = sorted(f.integer(lo, hi) for _ in picked)
        picked = [m for m in messages if m in picked]  # keep the written order
        blocks.append(
            "\n".join(
                f"[{clock(t)}] {f.pick(people)}: {writer.fill(m)}"
                for t, m in zip(times, picked, strict=True)
            )
        )
    return blocks


SURVEY_QUOTES = (
    "Nights are the problem, not the weeks. One page at 3am costs me the next day.",
    "We cut our alerts by half last spring and nobody noticed anything except that we sleep.",
    "The stipend is nice, but I would trade it for not being on call over the holidays.",
    "Our runbooks are written for the person who wrote the alert.",
    "I like on-call. It is the only time I see how the whole system fits together.",
    "Hand-overs are a chat message if you are lucky.",
    "Managers see the incident count, not the pages that never became incidents.",
    "Being secondary is worse than primary: on edge all week and rarely needed.",
    "Follow-the-sun sounds great until the hand-over lands in the middle of an incident.",
    "Time off in lieu only works if someone actually covers your work that day.",
    "We have {n} people on the rota. Every holiday season it falls apart.",
    "Third-party outages are the worst pages because there is nothing I can do.",
    "The shadow weeks made my first real shift much less scary.",
    "Our post-incident actions go into a backlog that nobody reads.",
    "Half our alerts fire on Mondays after the weekend batch jobs.",
    "Automated restarts fixed most of the noise; the pages that remain matter.",
    "Nobody tells you how lonely an incident at four in the morning is.",
    "The best change we made was a rule that every page must link to a runbook.",
    "I am leaving partly because of on-call. Not the work, the unpredictability.",
    "We moved to {product} for scheduling and swaps stopped needing a manager.",
)
SURVEY_ROLES = (
    "platform engineer", "site reliability engineer", "backend engineer", "engineering manager",
    "mobile engineer", "data engineer", "security engineer",
)  # fmt: skip
SIZE_BANDS = ("under 50 engineers", "50-249 engineers", "250-999 engineers", "1,000+ engineers")


def survey_quotes(f: Facts, writer: ReportWriter) -> list[str]:
    ids = sorted(f.rng.sample(range(1, 3200), len(SURVEY_QUOTES)))
    quotes = f.sample(SURVEY_QUOTES, len(SURVEY_QUOTES))
    return [
        f"R-{rid:04d} ({f.pick(SURVEY_ROLES)}, organisation of {f.pick(SIZE_BANDS)}): "
        f'"{writer.fill(quote)}"'
        for rid, quote in zip(ids, quotes, strict=True)
    ]


def report_survey(f: Facts, target: int) -> tuple[str, str, str]:
    institution = f"Institute for Applied Operations Research, {f.place()}"
    lead, second, third = f.people(3)
    respondents = f.integer(900, 3200)
    orgs = f.integer(30, 90)
    fieldwork = f.integer(1, 8)
    fixed = {
        "institution": institution,
        "period": str(YEAR),
        "respondents": f"{respondents:,}",
        "invited": f"{respondents * f.integer(130, 300) // 100:,}",
        "orgs": str(orgs),
        "items": str(f.integer(8, 14)),
        "grant": f.money(90_000, 480_000),
        "funder": f.place(),
        "pilot": f"{f.integer(5, 12)} engineers at {f.company()} in {f.month()} {YEAR - 1}",
        "prior": f.person(),
        "interviewers": f"{second} and {third}",
        "ethics": f.ticket("EC"),
        "fieldwork": f"{f.integer(1, 28)} {MONTHS[fieldwork - 1]} and {f.integer(1, 28)} "
        f"{MONTHS[fieldwork + 1]} {YEAR}",
    }
    writer = ReportWriter(f, fixed, list(PLACES))
    title = f"On-call work and engineer wellbeing: a survey of {respondents:,} engineers"
    front = [
        f"{lead}, {second} and {third}\n{institution}\nResearch report {f.ticket('IAOR')}, "
        f"{f.month()} {YEAR}",
        f"ABSTRACT. We surveyed {respondents:,} software engineers at {orgs} "
        "organisations about on-call duty and combined their answers with paging data from "
        f"incident-management tools. The median engineer received {f.integer(8, 30)} pages per "
        f"on-call week; {f.pct(25, 45)} of pages arrived outside working hours. Engineers on "
        "the busiest rotations reported markedly lower wellbeing and a higher intention to "
        "leave. Organisations that review their alerts regularly, compensate night work with "
        "time off and keep runbooks current reported lower paging load and better wellbeing.",
    ]
    size_rows = [
        [band, f"{f.integer(4, 30)}", f"{f.integer(80, 900):,}", f.pct(5, 40)]
        for band in ("Under 50 engineers", "50-249 engineers", "250-999 engineers", "1,000+")
    ]
    references = "\n".join(
        f"[{i}] {f.pick(LAST_NAMES)}, {f.pick(FIRST_NAMES)[0]}. and {f.pick(LAST_NAMES)}, "
        f"{f.pick(FIRST_NAMES)[0]}. ({YEAR - f.integer(1, 9)}). {t}. {j}, "
        f"{f.integer(3, 40)}({f.integer(1, 4)}), {f.integer(10, 300)}-{f.integer(301, 400)}."
        for i, (t, j) in enumerate(
            (
                ("Sleep, pagers and attrition", "Journal of Operational Practice"),
                ("Measuring alert fatigue", "Reliability Review"),
                ("Blameless reviews in practice", "Software Organisation Quarterly"),
                ("Time off in lieu and burnout", "Work and Wellbeing"),
                ("Follow-the-sun support models", "Distributed Work Studies"),
                ("What makes a good runbook", "Reliability Review"),
            ),
            start=1,
        )
    )
    recommendations = "\n".join(
        f"  {i}. {text}"
        for i, text in enumerate(
            (
                "Review every alert at least quarterly and delete those that never lead to action.",
                "Give time off after night pages, not only a stipend.",
                "Report paging load per person to managers every month.",
                "Keep runbooks next to the alerts they belong to and date every review.",
                "Let engineers swap shifts without manager approval.",
                "Track follow-up actions from incident reviews to completion.",
            ),
            start=1,
        )
    )
    sections = [
        Section("Introduction", "intro", limit=2),
        Section("Methods", "methods", "research_generic", limit=3),
        Section(
            "Sample",
            None,
            before=[
                f"After exclusions the sample held {respondents:,} responses. Table 1 shows how "
                "they were spread across organisation sizes.",
                "Table 1. Respondents by organisation size\n\n"
                + text_table(("Size band", "Organisations", "Respondents", "Share"), size_rows),
            ],
        ),
        Section("Findings: paging load", "load", "research_generic"),
        Section("Findings: wellbeing", "wellbeing", "research_generic"),
        Section("Findings: practices", "practice", "research_generic"),
        *(
            Section(f"Findings by size: {band}", "band", fixed={"band": band}, limit=3)
            for band in SIZE_BANDS
        ),
        Section("Discussion", "discussion", "research_generic"),
        Section("Limitations", "limitations", limit=3),
        Section(
            "Recommendations",
            None,
            before=["For engineering managers, we recommend:", recommendations],
        ),
        Section("References", None, before=[references]),
        Section(
            "Appendix: selected free-text answers",
            None,
            before=[
                "Answers to the question 'What would you change about on-call where you "
                "work?', quoted with permission and identified by respondent number only.",
                *survey_quotes(f, writer),
            ],
        ),
    ]
    writer.grow(sections, target)
    slug = f"on-call-wellbeing-survey-{slugify(lead)}-{YEAR}"
    return slug, "txt", render_text(title, front, sections)


def report_annual(f: Facts, target: int) -> tuple[str, str, str]:
    company = f.company()
    sites = f.sample(PLACES, 4)
    ceo, cfo, chair = f.people(3)
    fixed = {
        "company": company,
        "period": str(YEAR),
        "cfo": cfo,
        "chair": chair,
        "revenue": f.money_m(180, 620),
        "employees": f.count(2_500, 9_000),
    }
    writer = ReportWriter(f, fixed, sites)
    title = f"{company}: Annual Review {YEAR}"
    front = [
        f"Published {f.integer(2, 28)} March {YEAR + 1} by the board of {company}. Chair: "
        f"{chair}. Chief executive: "
        f"{ceo}. Chief financial officer: {cfo}."
    ]
    numbers = "\n".join(
        f"- {writer.fill(t)}"
        for t in (
            "Revenue: {revenue}",
            "Orders shipped: {big}",
            "Employees at year end: {employees}",
            "On-time delivery: {hi_pct}",
            "Net promoter score: {nps}",
            "Emissions versus baseline: down {pct}",
        )
    )
    sections = [
        Section("Letter from the chief executive", "letter", limit=2),
        Section("The year in numbers", None, before=[numbers]),
        *(
            Section(f"Regional performance: {site}", "regional", fixed={"site": site})
            for site in sites
        ),
        Section("Products and services", "product", "ops_generic"),
        Section("Customers", "customers", "ops_generic"),
        Section("People", "people", "ops_generic"),
        Section("Sustainability", "sustainability", "ops_generic"),
        Section("Financial review", "finance", "ops_generic"),
        Section("Principal risks", "risks", limit=4),
        Section("Outlook", "outlook", limit=3),
    ]
    sections[0].after.append(f"{ceo}\nChief executive, {company}")
    writer.grow(sections, target)
    slug = f"{slugify(company)}-annual-review-{YEAR}"
    return slug, "md", render_markdown(title, front, sections)


REPORT_MAKERS: tuple[tuple[Callable[[Facts, int], tuple[str, str, str]], int, int], ...] = (
    (report_quarterly, 4_000, 5_600),
    (report_postmortem, 4_000, 5_000),
    (report_survey, 3_900, 4_900),
    (report_annual, 4_000, 5_600),
)
"""Each report kind with its target word range: within 3,500-9,000 words, and (at the kind's
usual 1.4-1.5 tokens per word) within 5,000-12,000 tokens, so a report always needs splitting."""

# --------------------------------------------------------------------------------------------
# Special files: Windows-1252 note, JSONL records, malformed inputs
# --------------------------------------------------------------------------------------------

CAFE_MENU = """Café Lindenholm \u2013 menu, spring {year}
Saved by the till software in Windows-1252, as our old system always has.

Breakfast, served 07:30\u201311:00
  Porridge with poached pear and crème fraîche ...... €6.50
  Müsli with Greek yoghurt and honey ................ €5.20
  Croque-monsieur with Gruyère ...................... €7.90
  Eggs Benedict, hollandaise, sourdough ............. €8.40

Lunch, served 12:00\u201315:00
  Soupe à l'oignon gratinée ......................... €6.80
  Salade niçoise with seared tuna ................... €11.50
  Käsespätzle with crispy onions .................... €10.90
  Smørrebrød \u2013 three open sandwiches ................ €12.00
  Crème brûlée ...................................... €4.90

Drinks
  Café crème ........................................ €3.10
  Thé à la menthe ................................... €2.90
  Jus d\u2019orange pressé ............................... €3.60
  Oat milk for any coffee ........................... +€0.40

A note from the owner, Zoë Faßbender: our chef, José Núñez, changes the soup every Thursday.
We\u2019re closed on 21 April for the Easter market on the Marktplatz, and from 4 to 18 August for
the summer holiday. The \u201cmenu du jour\u201d (soup, main course and coffee) costs €17.50 and is
served until 14:30. Groups of more than 8 people, please book a day ahead on 0431 55 27 90.
"""


def cafe_menu_bytes() -> bytes:
    text = CAFE_MENU.replace("{year}", str(YEAR))
    return text.encode("cp1252")  # raises if a character has no Windows-1252 byte


TICKET_TEXTS = (
    "After resetting my password on {date} I can no longer log in to {product}. The page says "
    "'account locked' even though I only tried {n} times. We have {count} users on the "
    "Business plan and I am the only administrator, so nobody can add new staff until this is "
    "fixed.",
    "Invoice {invoice} charges VAT at 25% but our organisation in {place} is VAT-registered "
    "and should be invoiced under the reverse-charge rule. The total of {money} is therefore "
    "too high. Please issue a corrected invoice before our month-end close.",
    "Shipment {invoice} to our warehouse in {place} has been held at customs since {date}. The "
    "broker says the commercial invoice is missing the tariff code for {n} of the items. The "
    "goods are needed for a launch with {customer}.",
    "Since the update on {date} our integration hits HTTP 429 errors after roughly {count} "
    "requests an hour, although our plan allows ten times that. Our nightly sync for {n} "
    "stores now fails halfway through.",
    "Please add {n} more seats to our {product} subscription for the new team in {place}. "
    "Our purchase order is {invoice}, and the seats should be billed to the same cost centre "
    "as the existing {count}.",
    "The CSV export from {product} no longer includes the customer reference column. Our "
    "finance team reconciles {count} payments a week using that column and has had to do it "
    "by hand since {date}.",
    "We returned order {invoice} on {date} and the tracking shows it was delivered back to "
    "you. The refund of {money} has still not reached our account after {n} weeks.",
    "The Android app crashes as soon as I open the delivery map. It started after version "
    "{version}. I use a tablet running Android 14 and {n} of my colleagues have the same "
    "problem; the iPhone app works fine.",
)


def ticket_record(f: Facts, index: int, ticket_id: str) -> dict[str, object]:
    customer = f.company()
    values: dict[str, Callable[[], str]] = {
        "date": lambda: f.date(f.integer(1, 6)),
        "product": f.product,
        "n": lambda: str(f.integer(2, 9)),
        "count": lambda: f.count(15, 4000),
        "invoice": lambda: f.ticket(f.pick(("INV", "PO", "SHP", "ORD"))),
        "place": f.place,
        "money": lambda: f.money(400, 60_000),
        "customer": f.company,
        "version": lambda: f"{f.integer(3, 9)}.{f.integer(0, 20)}.{f.integer(0, 9)}",
    }
    requester = f.person()
    text = fill(TICKET_TEXTS[index % len(TICKET_TEXTS)], values)
    text += f"\n\n{requester}, {customer}"
    return {
        "id": ticket_id,
        "text": text,
        "metadata": {
            "customer": customer,
            "requester": requester,
            "priority": f.pick(("low", "normal", "high", "urgent")),
            "channel": f.pick(("email", "web form", "chat", "phone")),
            "created": f.iso_date(f.integer(1, 6)),
        },
    }


def records_jsonl(seed: int, malformed: bool) -> tuple[bytes, int, int]:
    """The support-ticket JSONL file: ``(bytes, good records, bad lines)``."""
    f = Facts(derived_rng(seed, "records"))
    base = f.integer(1000, 8000)
    good = [ticket_record(f, i, f"TCK-{base + i}") for i in range(len(TICKET_TEXTS))]
    lines = [json.dumps(record, ensure_ascii=False) for record in good]
    bad = 0
    if malformed:
        # A record cut off mid-write: invalid JSON.
        truncated = json.dumps(ticket_record(f, 9, f"TCK-{base + 9}"), ensure_ascii=False)
        lines.insert(3, truncated[: len(truncated) * 2 // 3])
        # A record from an exporter that called the field "body": no "text".
        no_text = ticket_record(f, 10, f"TCK-{base + 10}")
        no_text["body"] = no_text.pop("text")
        lines.insert(6, json.dumps(no_text, ensure_ascii=False))
        bad = 2
    return ("\n".join(lines) + "\n").encode("utf-8"), len(good), bad


def malformed_files(seed: int) -> dict[str, bytes]:
    rng = derived_rng(seed, "malformed")
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0\x08\x06\x00\x00"
        b"\x00" + bytes(rng.randrange(256) for _ in range(400)) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    # A delivery note exported by a DOS-era system in code page 850: not UTF-8, and bytes such
    # as 0x81 (u-umlaut in cp850) and 0x8D (i-grave) are undefined in Windows-1252.
    delivery_note = (
        "Lieferschein Nr. 4471 / bolla di consegna\r\n"
        "Kunde: Bäckerei Müller, Brückenstraße 12, Lüdenscheid\r\n"
        "Pos. 1  Gewürzmischung Würzig   2,5 kg   18,90\r\n"
        "Pos. 2  Caffè così forte        6 x 1 kg 74,40\r\n"
        "Pos. 3  Crème pâtissière        4 x 2 kg 31,60\r\n"
        "Bemerkung: Lieferung über Rampe 3, Übergabe an Frau Jürgens.\r\n"
    ).encode("cp850")
    pdf = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>\n"
        b"endobj\n4 0 obj\n<< /Length 44 >>\nstream\n"
        b"BT /F1 12 Tf 72 770 Td (Scanned page 1) Tj ET\nendstream\nendobj\n"
        b"trailer\n<< /Root 1 0 R /Size 5 >>\n%%EOF\n"
    )
    only_markup = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Loading&hellip;</title>
<style>body { margin: 0 } .spinner { width: 48px; height: 48px }</style>
<script src="/static/app.js" defer></script>
<script>window.__BOOT__ = {"page": "dashboard", "user": null};</script>
</head>
<body>
<!-- Rendered client-side: the server sends only this shell. -->
<noscript><p>Please enable JavaScript to use the dashboard.</p></noscript>
<div id="root"><div class="spinner" role="status" aria-label="Loading"></div></div>
<img src="/static/logo.svg" alt="Company logo">
<br>
&nbsp;
</body>
</html>
"""
    return {
        "malformed/binary.txt": png,
        "malformed/latin1-undecodable.txt": delivery_note,
        "malformed/empty.txt": b"",
        "malformed/scan.pdf": pdf,
        "malformed/only-markup.html": only_markup,
    }


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------

DOC_PATTERN = ("note", "md", "note", "html", "note", "md", "note", "html")
"""Kinds of ordinary documents, in turn: half notes, a quarter Markdown, a quarter HTML."""

NOTE_WORDS = (60, 250)
MEDIUM_WORDS = (150, 600)


@dataclass(frozen=True)
class Options:
    out: Path
    docs: int
    long: int
    seed: int
    malformed: bool


@dataclass(frozen=True)
class OutFile:
    path: str
    data: bytes
    kind: str


def derived_rng(seed: int, *parts: object) -> random.Random:
    """A ``random.Random`` for one document, seeded from ``seed`` and the document's identity.

    Seeding with a string is deterministic across runs and platforms (it hashes with SHA-512,
    not Python's randomised ``hash``), and per-document streams keep documents stable when
    ``--docs`` or ``--long`` change.
    """
    return random.Random(":".join([str(seed), *map(str, parts)]))


def visible_words(markup: str) -> int:
    """Rough visible word count of HTML, for the generator's own size check."""
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", markup)
    return word_count(html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def check_size(path: str, words: int, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if not lo <= words <= hi:
        raise RuntimeError(f"{path}: {words} words, outside the intended {lo}-{hi}")


def file_slug(kind: str, title: str) -> str:
    """``kind-title-slug`` without repeating the kind when the title starts with it."""
    slug = slugify(title)
    return slug if slug.startswith(kind) else f"{kind}-{slug}"


def ordinary_documents(opts: Options) -> list[OutFile]:
    files: list[OutFile] = []
    counters = {"note": 0, "md": 0, "html": 0}
    for i in range(opts.docs):
        kind = DOC_PATTERN[i % len(DOC_PATTERN)]
        index = counters[kind]
        counters[kind] += 1
        f = Facts(derived_rng(opts.seed, kind, index))
        if kind == "note":
            name, note_maker = NOTE_MAKERS[index % len(NOTE_MAKERS)]
            title, text = note_maker(f, index)
            path = f"notes/{index + 1:03d}-{file_slug(name, title)}.txt"
            check_size(path, word_count(text), NOTE_WORDS)
        elif kind == "md":
            name, doc_maker = MD_MAKERS[index % len(MD_MAKERS)]
            title, text = doc_maker(f)
            path = f"docs/{index + 1:03d}-{file_slug(name, title)}.md"
            check_size(path, word_count(text), MEDIUM_WORDS)
        else:
            name, page_maker = HTML_MAKERS[index % len(HTML_MAKERS)]
            title, text = page_maker(f)
            path = f"web/{index + 1:03d}-{file_slug(name, title)}.html"
            check_size(path, visible_words(text), MEDIUM_WORDS)
        files.append(OutFile(path, text.encode("utf-8"), kind))
    return files


def long_reports(opts: Options) -> list[OutFile]:
    files = []
    for index in range(opts.long):
        f = Facts(derived_rng(opts.seed, "report", index))
        maker, lo, hi = REPORT_MAKERS[index % len(REPORT_MAKERS)]
        slug, extension, text = maker(f, f.integer(lo, hi))
        path = f"reports/{index + 1:02d}-{slug}.{extension}"
        check_size(path, word_count(text), (3_500, 9_000))
        files.append(OutFile(path, text.encode("utf-8"), "report"))
    return files


def build(opts: Options) -> tuple[list[OutFile], int, int]:
    """Every file of the corpus, plus the counts of good and bad JSONL lines."""
    files = ordinary_documents(opts)
    files.append(OutFile("notes/cafe-menu-cp1252.txt", cafe_menu_bytes(), "cp1252"))
    records, good, bad = records_jsonl(opts.seed, opts.malformed)
    files.append(OutFile("records.jsonl", records, "records"))
    files.extend(long_reports(opts))
    if opts.malformed:
        files.extend(OutFile(p, d, "malformed") for p, d in malformed_files(opts.seed).items())
    return files, good, bad


def prepare_output(out: Path) -> None:
    """Empty ``out`` if it is a corpus this script wrote; refuse to touch anything else."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        sys.exit(f"make_corpus.py: refusing to write to {out}: it exists and is not a directory")
    if out.is_dir():
        if (out / MARKER).is_file():
            shutil.rmtree(out)
        elif any(out.iterdir()):
            sys.exit(
                f"make_corpus.py: refusing to delete {out}: it is not empty and has no {MARKER} "
                "file, so it was not generated by this script; choose another --out or remove "
                "the directory yourself"
            )
    out.mkdir(parents=True, exist_ok=True)


def write(opts: Options) -> str:
    files, good, bad = build(opts)  # build everything before deleting anything
    prepare_output(opts.out)
    (opts.out / MARKER).write_text(
        "This directory was generated by examples/make_corpus.py and is deleted and rewritten\n"
        "on every run. Options: "
        f"--docs {opts.docs} --long {opts.long} --seed {opts.seed}"
        f"{'' if opts.malformed else ' --no-malformed'}\n",
        encoding="utf-8",
    )
    for item in files:
        target = opts.out / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.data)
    kinds = ("note", "md", "html", "cp1252", "report", "malformed")
    counts = {kind: sum(1 for item in files if item.kind == kind) for kind in kinds}
    total = sum(len(item.data) for item in files)
    return (
        f"wrote {len(files)} files, {total:,} bytes, to {display(opts.out)}: "
        f"{counts['note']} notes, {counts['md']} Markdown docs, {counts['html']} HTML pages, "
        f"{counts['cp1252']} Windows-1252 note, {counts['report']} long reports, records.jsonl "
        f"({good} records + {bad} bad lines), {counts['malformed']} malformed files"
    )


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Generate routeq's example corpus for batch summarisation (deterministic)."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory, deleted and recreated if generated by this script "
        "(default: the corpus directory next to this script)",
    )
    parser.add_argument(
        "--docs",
        type=non_negative,
        default=24,
        help="number of ordinary short and medium documents: notes, Markdown, HTML (default 24)",
    )
    parser.add_argument(
        "--long", type=non_negative, default=3, help="number of long reports (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--no-malformed",
        dest="malformed",
        action="store_false",
        help="skip malformed/ and the two bad lines of records.jsonl",
    )
    args = parser.parse_args(argv)
    return Options(args.out, args.docs, args.long, args.seed, args.malformed)


def main(argv: Sequence[str] | None = None) -> None:
    print(write(parse_args(argv)))


if __name__ == "__main__":
    main()
