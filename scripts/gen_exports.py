#!/usr/bin/env python3
"""Six exports of the same people, written the way the real systems write them, with a
ground truth and a hand-written Kinship mapping: fixtures for "connect any export as it comes".

Usage:
    python3 scripts/gen_exports.py [--people 5000] [--seed 7] [--out DIR] [--check]

Writes into DIR (created if needed):
    Contact.csv            Salesforce contacts (Data Loader style: API names, every field quoted)
    orders_export.csv      Shopify "Export orders" CSV, one row per line item
    invoices.jsonl         Stripe invoice objects, one per line, as the API returns them
    tickets.jsonl          Zendesk tickets (incremental export), one per line
    members_export.csv     Mailchimp audience export (subscribed members)
    survey_responses.csv   SurveyMonkey "all responses" CSV (two header rows)
    truth.csv              source,record_key,person_id for every record of every file
    kinship.toml           a Kinship mapping of all six, written by hand

Standard library only; the same --people/--seed always give byte-identical files. --check
re-reads what was written and verifies it (CSV and JSON parse, truth keys unique and
complete). All names, emails and phone numbers are made up: phones use the 555 exchange,
work emails fictional companies (contoso.com, initech.com...).

The people
----------
~N people (person_id P00001...) living in ~35 US cities (region US). Names come from a
long-tailed draw over common US names (Smith, Johnson, García, Nguyen...) with accented ones
(José, Zoë, Müller, Núñez, Chloé), so namesakes occur: a shared name is weak evidence.
Each person has a personal email, a third have a work email, each a main phone and some a
second (mobile) number, a street address, a birth date.

Households (~8% of people, 2-3 members) share surname, address, home phone, IP address and
one family mailbox (`thegarciafamily@...`), and usually a Salesforce account, but have their
own first name, birth date and mobile. They are DIFFERENT people: email and phone alone must
not merge them. Their CRM contacts all carry the shared email and home phone (each with its
own Id), so with `crm_id = 1` those identifiers are contested and join nothing; their own
mobiles (on the contact as MobilePhone, on orders as Billing Phone) still place their orders.

Per export, what is in it and what it defeats
---------------------------------------------
Contact.csv (source `crm`, key `Id`): ~92% of people (the rest are shoppers, subscribers
  or requesters the CRM never heard of).
  * Ids are real-shaped 18-character Salesforce ids (003... contacts, 001... accounts): a
    case-sensitive 15-character id (`0035g000009VA9Z`; `...VA9Z` and `...VA9z` are different
    records) plus the 3-character suffix Salesforce derives from its upper-case letters.
  * CreatedDate/LastModifiedDate written `2026-02-18T12:00:00.000+0000` (offset without colon);
    Birthdate `YYYY-MM-DD`, blank for about half; HasOptedOutOfEmail `true`/`false`.
  * Phone in mixed formats: `(415) 555-0134`, `+1 415 555 0134`, `415.555.0134`, `415-555-0134`,
    `4155550134`, `1-415-555-0134`; MobilePhone usually blank, sometimes the same number again
    in another format. A phone matcher must normalise to E.164 (default region US).
  * MailingStreet sometimes holds two lines (`12 Elm St\\nApt 4B`): a newline inside a quoted
    CSV field. MailingState is `MA`, `Massachusetts` or `ma`; MailingCountry `United States`,
    `USA`, `US` or blank; MailingPostalCode 5 digits with leading zeros kept (`02134`) or ZIP+4.
  * ~4% of CRM people have a DUPLICATE contact (second Id, created later): the same person
    with the email in other case (or their other address, or none), the phone in another
    format, maybe a nickname (Bill for William) or the surname without accents, fewer fields.
    With `crm_id = 1` two contacts never share a profile through exact identifiers: finding
    these is the fuzzy stage's job (truth says they are one person).
  * Households: see above (shared email + phone, different people).

orders_export.csv (source `shop`, key `Name`): ~60% of people, 1-4 orders each, newest first.
  * One row per LINE ITEM. Order-level columns (Financial Status, Paid at, totals, Billing/
    Shipping address, Id, Phone, ...) are filled only on the first row of an order and blank
    on its following rows; those keep Name, Email, Created at and the Lineitem columns. A
    reader keyed by Name sees the continuation rows as repeats of the key.
  * Created at / Paid at are store-local with a numeric offset: `2026-02-18 11:58:03 -0500`
    (America/New_York, so `-0400` in summer). Paid at is blank for pending orders.
  * Amounts in major units with two decimals (`61.56`); Lineitem names contain commas and
    double quotes (`Canvas Tote, Natural`, `10" Cast Iron Skillet`), so CSV quoting matters.
  * ~10% of orders use the person's OTHER email (personal vs work, or a second personal
    mailbox) than the CRM's; then Billing Phone always carries a phone the CRM has, so the
    order can still be joined (by phone).
  * Billing Phone typed by the customer in any format; Phone (order level) is the account
    phone in E.164 when present. Billing Name `First Last`, sometimes `FIRST LAST`,
    lower case, accents dropped or with a middle initial (`Zoë K. Müller`).
  * ~10% of orders ship to someone else (a gift): Shipping Name/Street are another person.
    Mapping Shipping Name as the customer's name is wrong.
  * Billing Zip is plain text with leading zeros (`02134`); see ZIP_APOSTROPHE below.

invoices.jsonl (source `invoices`, key `id`): ~35% of people are Stripe customers (one
  `cus_...` each) with 1-8 monthly invoices.
  * Nested JSON as the API returns it: `lines.data[].price.product`, `customer_address.city`,
    `status_transitions.paid_at`; nulls where Stripe has none (customer_phone, due_date for
    automatically charged invoices, number for drafts, customer_address for many).
  * Amounts are integers in CENTS (`amount_due: 6156`), currency lower-case `usd`; times
    are Unix seconds. Statuses: paid, open, void, uncollectible, draft (amount_paid 0 unless paid).
  * customer_name as typed on the card, often `FIRST LAST`, sometimes null; customer_email the
    CRM email or the work/other one (~25%).
  * ~25% of customers that are in the CRM carry `metadata.salesforce_contact_id` (a CRM sync),
    an exact link to the contact; the rest have `metadata: {}`.

tickets.jsonl (source `helpdesk`, key `id`): ~30% of people raise 1-3 tickets, written in
  incremental-export order (by updated_at), ticket ids increasing with created_at.
  * Times RFC 3339 with `Z`; id and requester.id are JSON integers, not strings.
  * requester {id, name, email}: Zendesk has one user per email address, so household members
    writing from the family mailbox are ONE requester (same id, the first writer's name);
    twitter requesters have no email (null) and a handle or nickname for a name.
  * Names as people type them: `First Last`, `first last`, first name only, `First L.`.
  * custom_fields [{id: 360001234567, value: "#1042" | "1042" | null}] holds the order number an
    agent typed, when the ticket is about an order (inside an array of objects, not a column).
  * Descriptions contain newlines; priority may be null; tags are arrays.

members_export.csv (source `email`, key `EUID`): ~50% of people subscribed.
  * Mailchimp's headers with spaces (`Email Address`, `First Name`, `Phone Number`) next to
    upper-case merge tags (MEMBER_RATING, OPTIN_TIME, LEID, EUID, ...); every field quoted.
  * Birthday is `MM/DD`: month and day, NO year. It must not be read as a birth date.
  * Email Address sometimes upper case or capitalised (`John.Smith@Gmail.com`). An email is
    unique in an audience, so only one household member can subscribe with the family mailbox.
  * Address is one field, parts separated by two spaces (`12 Elm St  Boston  MA  02134  US`).
  * OPTIN_TIME/CONFIRM_TIME/LAST_CHANGED `YYYY-MM-DD HH:MM:SS` in UTC; imported members have no
    OPTIN_TIME/IPs; LATITUDE/LONGITUDE/TIMEZONE come from the confirming IP (blank without it).
  * TAGS is a list of quoted names inside one field: `"vip","newsletter"`.

survey_responses.csv (source `survey`, key `Respondent ID`): ~25% of people answer once.
  * SurveyMonkey writes TWO header rows: the question texts, then a row naming answer kinds
    (`Response`, `Open-Ended Response`) with blanks under the metadata columns. A reader
    taking row 2 as data sees a record without a Respondent ID (it should be rejected, 1 row).
  * Start Date / End Date month first with AM/PM in the account's zone (America/Los_Angeles):
    `09/15/2026 02:05:33 PM`. Read day-first, 09/10 becomes October 9.
  * Question texts are the column names (long, with `?` and commas).
  * The free-text answer contains commas, doubled quotes and newlines inside a quoted field.
  * Email invitations fill Email/First/Last Name from the contact list; web-link respondents
    type them: some leave Email blank but give names (only fuzzy matching can place them).

truth.csv: `source,record_key,person_id`, one row per record (per ORDER for the shop, per
contact, invoice, ticket, member, response), keyed exactly as kinship.toml keys each source.
"""
import argparse
import csv
import json
import os
import random
import sys
import unicodedata
from datetime import date, datetime, timedelta, timezone

UTC = timezone.utc
NOW = datetime(2026, 2, 28, 22, 0, 0, tzinfo=UTC)  # the moment every export was taken
HISTORY_START = datetime(2023, 1, 1, tzinfo=UTC)  # orders, invoices, tickets start here
CRM_START = datetime(2019, 6, 1, tzinfo=UTC)

# Recent Shopify exports write zips as '02134 (a leading apostrophe, so spreadsheets keep the
# zero). False writes plain text with the leading zeros, as asked for these fixtures.
ZIP_APOSTROPHE = False

CRM_COVERAGE = 0.92
CRM_DUPLICATE_RATE = 0.04
HOUSEHOLD_START_RATE = 0.03  # chance that the next "draw" is a household of 2-3
SHOP_RATE, INVOICE_RATE, TICKET_RATE, MAILCHIMP_RATE, SURVEY_RATE = 0.60, 0.35, 0.30, 0.50, 0.25
OTHER_EMAIL_ORDER_RATE = 0.10

# ---------------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------------

# (name, weight). Common names first; accented ones spread through.
FIRST_NAMES = [
    ("James", 40), ("Mary", 36), ("John", 34), ("Patricia", 20), ("Robert", 32), ("Jennifer", 28),
    ("Michael", 34), ("Linda", 18), ("William", 28), ("Elizabeth", 24), ("David", 30), ("Barbara", 14),
    ("Richard", 18), ("Susan", 14), ("Joseph", 20), ("Jessica", 20), ("Thomas", 20), ("Sarah", 22),
    ("Christopher", 18), ("Karen", 12), ("Daniel", 22), ("Lisa", 12), ("Matthew", 18), ("Nancy", 10),
    ("Anthony", 14), ("Margaret", 10), ("Mark", 12), ("Sandra", 8), ("Emily", 18), ("Ashley", 14),
    ("Steven", 12), ("Kimberly", 10), ("Andrew", 14), ("Michelle", 12), ("Joshua", 12), ("Amanda", 10),
    ("Kevin", 10), ("Melissa", 8), ("Brian", 10), ("Stephanie", 8), ("George", 8), ("Rebecca", 8),
    ("Katherine", 10), ("Alexander", 10), ("Laura", 8), ("Olivia", 12), ("Noah", 10), ("Emma", 12),
    ("Liam", 10), ("Sophia", 10), ("Ethan", 8), ("Isabella", 8), ("Mason", 6), ("Ava", 8), ("Mia", 8),
    ("José", 14), ("María", 14), ("Luis", 8), ("Sofía", 8), ("Zoë", 6), ("Chloé", 5), ("Renée", 4),
    ("André", 4), ("Inés", 4), ("Raúl", 4), ("Andrés", 4), ("Joaquín", 3), ("Noël", 2), ("Björn", 2),
    ("Søren", 2), ("Jürgen", 2), ("François", 3), ("Léa", 3), ("Zoé", 2), ("Ángel", 4), ("Lucía", 4),
    ("Mei", 4), ("Wei", 4), ("Minh", 4), ("Priya", 5), ("Arjun", 4), ("Aaliyah", 4), ("Darnell", 3),
    ("Siobhan", 2), ("Seán", 2), ("Nguyen", 1), ("Fatima", 4), ("Omar", 4), ("Yuki", 3), ("Hana", 3),
    ("Carlos", 8), ("Ana", 8), ("Diego", 6), ("Valentina", 5), ("Camila", 5), ("Mateo", 5),
]
LAST_NAMES = [
    ("Smith", 60), ("Johnson", 48), ("Williams", 40), ("Brown", 36), ("Jones", 34), ("García", 32),
    ("Miller", 28), ("Davis", 26), ("Rodríguez", 24), ("Martínez", 24), ("Hernández", 20), ("López", 18),
    ("González", 18), ("Wilson", 16), ("Anderson", 16), ("Thomas", 14), ("Taylor", 14), ("Moore", 12),
    ("Jackson", 12), ("Martin", 12), ("Lee", 14), ("Pérez", 12), ("Thompson", 10), ("White", 10),
    ("Harris", 10), ("Sánchez", 10), ("Clark", 9), ("Ramírez", 9), ("Lewis", 8), ("Robinson", 8),
    ("Walker", 8), ("Young", 8), ("Allen", 8), ("King", 8), ("Wright", 8), ("Scott", 7), ("Torres", 7),
    ("Nguyen", 12), ("Hill", 7), ("Flores", 7), ("Green", 7), ("Adams", 6), ("Nelson", 6), ("Baker", 6),
    ("Hall", 6), ("Rivera", 6), ("Campbell", 5), ("Mitchell", 5), ("Carter", 5), ("Roberts", 5),
    ("Müller", 5), ("Núñez", 5), ("O'Brien", 5), ("O'Connor", 4), ("McDonald", 4), ("Peña", 4),
    ("Schröder", 2), ("Kowalski", 3), ("Nowak", 2), ("Ibáñez", 2), ("Dubois", 2), ("Lefèvre", 2),
    ("Patel", 8), ("Shah", 4), ("Kim", 8), ("Park", 6), ("Chen", 8), ("Wang", 6), ("Tran", 5), ("Le", 4),
    ("Cohen", 3), ("Murphy", 5), ("Sullivan", 4), ("Kelly", 4), ("Price", 3), ("Bennett", 3),
    ("Van der Berg", 1), ("De la Cruz", 2), ("St. John", 1), ("Abernathy", 1), ("Okafor", 2),
    ("Haddad", 2), ("Svensson", 1), ("Jørgensen", 1), ("Çelik", 1), ("Brontë", 1), ("Gómez", 6),
    ("Díaz", 6), ("Reyes", 5), ("Cruz", 5), ("Morales", 5), ("Ortiz", 4), ("Gutiérrez", 4), ("Chávez", 4),
]
NICKNAMES = {
    "William": "Bill", "Robert": "Bob", "Elizabeth": "Liz", "Katherine": "Kate", "Michael": "Mike",
    "James": "Jim", "Jennifer": "Jen", "Christopher": "Chris", "Joseph": "Joe", "Margaret": "Peggy",
    "Richard": "Rick", "Thomas": "Tom", "Daniel": "Dan", "Alexander": "Alex", "Patricia": "Pat",
    "Matthew": "Matt", "Anthony": "Tony", "Joshua": "Josh", "Andrew": "Drew", "Rebecca": "Becky",
    "Susan": "Sue", "Stephanie": "Steph", "Kimberly": "Kim", "Samantha": "Sam", "Steven": "Steve",
}
MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTW"

# city, state code, state name, first zip, zips, area code, IANA zone, latitude, longitude
CITIES = [
    ("Boston", "MA", "Massachusetts", 2108, 28, "617", "America/New_York", 42.3601, -71.0589),
    ("Cambridge", "MA", "Massachusetts", 2138, 4, "617", "America/New_York", 42.3736, -71.1097),
    ("Worcester", "MA", "Massachusetts", 1601, 10, "508", "America/New_York", 42.2626, -71.8023),
    ("Hartford", "CT", "Connecticut", 6101, 12, "860", "America/New_York", 41.7658, -72.6734),
    ("Newark", "NJ", "New Jersey", 7102, 12, "973", "America/New_York", 40.7357, -74.1724),
    ("Providence", "RI", "Rhode Island", 2903, 8, "401", "America/New_York", 41.8240, -71.4128),
    ("Portland", "ME", "Maine", 4101, 3, "207", "America/New_York", 43.6591, -70.2568),
    ("New York", "NY", "New York", 10001, 40, "212", "America/New_York", 40.7128, -74.0060),
    ("Brooklyn", "NY", "New York", 11201, 38, "718", "America/New_York", 40.6782, -73.9442),
    ("Philadelphia", "PA", "Pennsylvania", 19102, 40, "215", "America/New_York", 39.9526, -75.1652),
    ("Pittsburgh", "PA", "Pennsylvania", 15201, 30, "412", "America/New_York", 40.4406, -79.9959),
    ("Baltimore", "MD", "Maryland", 21201, 30, "410", "America/New_York", 39.2904, -76.6122),
    ("Atlanta", "GA", "Georgia", 30303, 30, "404", "America/New_York", 33.7490, -84.3880),
    ("Miami", "FL", "Florida", 33125, 30, "305", "America/New_York", 25.7617, -80.1918),
    ("Charlotte", "NC", "North Carolina", 28202, 25, "704", "America/New_York", 35.2271, -80.8431),
    ("Raleigh", "NC", "North Carolina", 27601, 15, "919", "America/New_York", 35.7796, -78.6382),
    ("Columbus", "OH", "Ohio", 43201, 30, "614", "America/New_York", 39.9612, -82.9988),
    ("Detroit", "MI", "Michigan", 48201, 30, "313", "America/Detroit", 42.3314, -83.0458),
    ("Chicago", "IL", "Illinois", 60601, 60, "312", "America/Chicago", 41.8781, -87.6298),
    ("Minneapolis", "MN", "Minnesota", 55401, 30, "612", "America/Chicago", 44.9778, -93.2650),
    ("Nashville", "TN", "Tennessee", 37201, 20, "615", "America/Chicago", 36.1627, -86.7816),
    ("Houston", "TX", "Texas", 77002, 60, "713", "America/Chicago", 29.7604, -95.3698),
    ("Dallas", "TX", "Texas", 75201, 40, "214", "America/Chicago", 32.7767, -96.7970),
    ("Austin", "TX", "Texas", 78701, 30, "512", "America/Chicago", 30.2672, -97.7431),
    ("San Antonio", "TX", "Texas", 78201, 40, "210", "America/Chicago", 29.4241, -98.4936),
    ("Kansas City", "MO", "Missouri", 64101, 30, "816", "America/Chicago", 39.0997, -94.5786),
    ("St. Louis", "MO", "Missouri", 63101, 30, "314", "America/Chicago", 38.6270, -90.1994),
    ("Denver", "CO", "Colorado", 80202, 30, "303", "America/Denver", 39.7392, -104.9903),
    ("Salt Lake City", "UT", "Utah", 84101, 20, "801", "America/Denver", 40.7608, -111.8910),
    ("Phoenix", "AZ", "Arizona", 85003, 40, "602", "America/Phoenix", 33.4484, -112.0740),
    ("Las Vegas", "NV", "Nevada", 89101, 40, "702", "America/Los_Angeles", 36.1699, -115.1398),
    ("Los Angeles", "CA", "California", 90001, 80, "213", "America/Los_Angeles", 34.0522, -118.2437),
    ("San Diego", "CA", "California", 92101, 30, "619", "America/Los_Angeles", 32.7157, -117.1611),
    ("San Francisco", "CA", "California", 94102, 30, "415", "America/Los_Angeles", 37.7749, -122.4194),
    ("Seattle", "WA", "Washington", 98101, 40, "206", "America/Los_Angeles", 47.6062, -122.3321),
    ("Portland", "OR", "Oregon", 97201, 30, "503", "America/Los_Angeles", 45.5152, -122.6784),
]
CITY_WEIGHTS = [10, 4, 3, 3, 3, 3, 2, 12, 10, 8, 4, 4, 6, 6, 4, 3, 4, 4, 10, 4, 3, 8, 6, 5, 4, 3, 3,
                5, 3, 5, 3, 10, 5, 7, 6, 4]
# Standard and daylight UTC offsets (hours) of each zone, as Mailchimp's GMTOFF/DSTOFF.
ZONE_OFFSETS = {"America/New_York": (-5, -4), "America/Detroit": (-5, -4), "America/Chicago": (-6, -5),
                "America/Denver": (-7, -6), "America/Phoenix": (-7, -7), "America/Los_Angeles": (-8, -7)}
STATE_TAX = {"MA": 0.0625, "CT": 0.0635, "NJ": 0.06625, "RI": 0.07, "ME": 0.055, "NY": 0.08875, "PA": 0.06,
             "MD": 0.06, "GA": 0.089, "FL": 0.07, "NC": 0.0725, "OH": 0.075, "MI": 0.06, "IL": 0.1025,
             "MN": 0.08025, "TN": 0.0925, "TX": 0.0825, "MO": 0.08238, "CO": 0.0881, "UT": 0.0825,
             "AZ": 0.086, "NV": 0.08375, "CA": 0.0775, "WA": 0.1025, "OR": 0.0}

STREET_NAMES = ["Elm", "Maple", "Oak", "Pine", "Cedar", "Washington", "Lincoln", "Jefferson", "Park",
                "Lake", "Hill", "Main", "Church", "Spring", "River", "Highland", "Franklin", "Madison",
                "Chestnut", "Walnut", "Sunset", "Willow", "Magnolia", "Center", "Union", "Prospect",
                "Cherry", "Adams", "Jackson", "Harvard", "Commonwealth", "Beacon", "Grove", "Mill", "Orchard",
                "Martin Luther King Jr", "Ocean", "Valley", "Forest", "Meadow", "Broad", "Front", "Water"]
STREET_TYPES = [("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Boulevard", "Blvd"), ("Drive", "Dr"),
                ("Lane", "Ln"), ("Court", "Ct"), ("Place", "Pl"), ("Terrace", "Ter"), ("Way", "Way")]

PERSONAL_DOMAINS = [("gmail.com", 45), ("yahoo.com", 14), ("outlook.com", 9), ("hotmail.com", 8),
                    ("icloud.com", 10), ("aol.com", 4), ("comcast.net", 4), ("protonmail.com", 3), ("me.com", 3)]
WORK_DOMAINS = ["contoso.com", "fabrikam.com", "initech.com", "globex.com", "acmecorp.com", "hooli.com",
                "northwindtraders.com", "wideworldimporters.com", "tailspintoys.com", "adventure-works.com",
                "umbrellacorp.io", "piedpiper.net", "vandelayindustries.com", "dundermifflin.com"]

# Shopify catalogue: name (with commas and quotes on purpose), sku, price in cents.
PRODUCTS = [
    ("Organic Cotton Tee - M / Navy", "TEE-ORG-M-NVY", 2800), ("Organic Cotton Tee - L / Black", "TEE-ORG-L-BLK", 2800),
    ("Merino Wool Socks (3-Pack)", "SOCK-MER-3PK", 2400), ("Canvas Tote, Natural", "TOTE-CNV-NAT", 3200),
    ('10" Cast Iron Skillet', "SKL-CI-10", 4500), ("Ceramic Pour-Over Set", "POUR-CER-SET", 5400),
    ("Beeswax Candle - Lavender", "CNDL-BW-LAV", 1850), ("Linen Napkins, Set of 4", "NAP-LIN-4", 3600),
    ("Stoneware Mug 12 oz", "MUG-STN-12", 2200), ("Wool Throw Blanket - Oatmeal", "THRW-WL-OAT", 11900),
    ("Leather Card Holder", "CARD-LTH-BRN", 3900), ("Bamboo Cutting Board", "BRD-BMB-L", 2950),
    ("Gift Card $50", "GIFT-50", 5000), ("Cold Brew Coffee Kit", "CBK-KIT", 4200),
    ("Hand Cream \u2013 Unscented, 2 oz", "HC-UNS-2", 1600), ("Enamel Pin \"Stay Curious\"", "PIN-CUR", 1200),
]
STRIPE_PLANS = [("Starter plan", 1900, 30), ("Pro plan", 4900, 45), ("Team plan (per seat)", 1500, 25)]
STRIPE_ADDONS = [("Priority support add-on", 1000), ("Extra storage 100 GB", 500), ("Onboarding session", 15000)]
PLAN_NAMES = {name for name, _, _ in STRIPE_PLANS}

TICKET_TOPICS = [
    ("Where is my order {order}?", "Hi,\n\nI placed order {order} on {day} and the tracking hasn't updated in a week. Can you check?\n\nThanks,\n{first}",
     ["shipping", "delayed"], True),
    ("Item arrived damaged", "Hello, the {item} in my order {order} arrived broken.\nPhotos attached. I'd like a replacement or a refund.\n\n{first}",
     ["damaged", "refund"], True),
    ("Return request for {order}", "Hi there - I'd like to return the {item}. It doesn't fit, unfortunately.\nWhat's the process?",
     ["returns"], True),
    ("Charged twice", "I see two charges on my card for the same invoice. Please refund one of them.\n-- {first}",
     ["billing", "refund"], False),
    ("Can't log in", "Password reset emails never arrive. I've checked spam.\n\nRegards, {first}", ["account", "login"], False),
    ("Question about {item}", "Is the {item} dishwasher safe? And do you ship to Canada?", ["product_question"], False),
    ("Update my billing address", "Please update the address on my invoices to the one on file. Thank you!",
     ["billing", "invoice"], False),
    ("Cancel subscription", "Hi, please cancel my plan at the end of this billing period.\nThanks", ["billing", "cancellation"], False),
]
SURVEY_REASONS = [
    "Fast shipping and great quality.",
    "Love the products, but shipping took forever",
    'Customer service was "meh", to be honest.',
    "Everything arrived on time, well packed, and exactly as described.",
    "The skillet is amazing!!\nWould buy again.",
    "Prices are a bit high, but the quality, honestly, makes up for it.",
    "Had to contact support twice about a damaged item.\n\nThey fixed it, eventually.",
    'The "Stay Curious" pin was a nice touch :)',
    "ok",
    "",
    "N/A",
    "Great café-style mugs; my partner loves them, too.",
    "Website is confusing, checkout failed once,\nand the coupon didn't apply.",
    "Recommend to friends all the time",
    "Too many emails.",
]
SURVEY_NPS_Q = "How likely is it that you would recommend us to a friend or colleague?"
SURVEY_REASON_Q = "What is the main reason for your score?"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

class Weighted:
    """Draws from (value, weight) pairs."""

    def __init__(self, pairs):
        self.values = [v for v, _ in pairs]
        self.cum = []
        total = 0
        for _, w in pairs:
            total += w
            self.cum.append(total)

    def __call__(self, rng):
        return rng.choices(self.values, cum_weights=self.cum)[0]


FIRST = Weighted(FIRST_NAMES)
LAST = Weighted(LAST_NAMES)
CITY = Weighted(list(zip(range(len(CITIES)), CITY_WEIGHTS)))
PERSONAL_DOMAIN = Weighted(PERSONAL_DOMAINS)

_FOLD = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ł": "l", "Ł": "L", "đ": "d", "\u2013": "-"})


def fold(s):
    """ASCII spelling: García -> Garcia, Jørgensen -> Jorgensen."""
    s = unicodedata.normalize("NFKD", s.translate(_FOLD))
    return "".join(c for c in s if not unicodedata.combining(c))


def local_part(s):
    return "".join(c for c in fold(s).lower() if c.isalnum())


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n, width):
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def salesforce_id(prefix, counter):
    """18-character Salesforce id: key prefix, instance `5g`, reserved 0, 9-char record number,
    then the 3-char suffix encoding which of the first 15 characters are upper case."""
    id15 = f"{prefix}5g0{base62(counter, 9)}"
    suffix = ""
    for chunk in range(3):
        flags = sum(1 << i for i, c in enumerate(id15[chunk * 5:chunk * 5 + 5]) if "A" <= c <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[flags]
    return id15 + suffix


def random_token(rng, n, alphabet=ALNUM):
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_time(rng, start, end):
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def _nth_sunday(year, month, n):
    d = date(year, month, 1)
    d += timedelta(days=(6 - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def us_offset_hours(moment, zone):
    """UTC offset of a US zone at a UTC instant (DST: second Sunday of March to first Sunday
    of November, 02:00 local), without depending on the system's tz database."""
    std, dst = ZONE_OFFSETS[zone]
    if std == dst:
        return std
    y = moment.year
    start = datetime.combine(_nth_sunday(y, 3, 2), datetime.min.time(), UTC) + timedelta(hours=2 - std)
    end = datetime.combine(_nth_sunday(y, 11, 1), datetime.min.time(), UTC) + timedelta(hours=2 - dst)
    return dst if start <= moment < end else std


def local(moment, zone):
    off = us_offset_hours(moment, zone)
    return moment + timedelta(hours=off), off


def fmt_salesforce(m):
    return m.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def fmt_shopify(m, zone="America/New_York"):
    lt, off = local(m, zone)
    return f"{lt:%Y-%m-%d %H:%M:%S} {'-' if off < 0 else '+'}{abs(off):02d}00"


def fmt_zendesk(m):
    return m.strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_mailchimp(m):
    return m.strftime("%Y-%m-%d %H:%M:%S")


def fmt_surveymonkey(m, zone="America/Los_Angeles"):
    lt, _ = local(m, zone)
    return lt.strftime("%m/%d/%Y %I:%M:%S %p")


def unix(m):
    return int(m.timestamp())


def money(cents):
    return f"{cents / 100:.2f}"


def phone_as(digits, style):
    a, e, l = digits[:3], digits[3:6], digits[6:]
    return [
        f"({a}) {e}-{l}", f"+1 {a} {e} {l}", f"{a}.{e}.{l}", f"{a}-{e}-{l}", digits, f"1-{a}-{e}-{l}",
        f"+1{digits}", f"+1 ({a}) {e}-{l}", f"{a} {e} {l}",
    ][style]


def e164(digits):
    return "+1" + digits


def any_phone_format(rng, digits, avoid=None):
    styles = [s for s in range(9) if s != avoid]
    return phone_as(digits, rng.choice(styles))


# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------

class Person:
    __slots__ = ("pid", "first", "middle", "last", "birth", "city", "number", "street_name", "street_type",
                 "apt", "zip", "phone", "mobile", "personal_email", "work_email", "other_email", "crm_email",
                 "household", "ip", "crm", "crm_phones", "orders", "stripe_customer", "handle", "account")

    def street(self, short=True, apt=True, sep=" "):
        kind = self.street_type[1] if short else self.street_type[0]
        s = f"{self.number} {self.street_name} {kind}"
        if apt and self.apt:
            s += sep + self.apt
        return s

    @property
    def c(self):
        return CITIES[self.city]

    def zip5(self):
        return f"{self.zip:05d}"


class Registry:
    """Unique emails and phone numbers across the population."""

    def __init__(self, rng):
        self.rng = rng
        self.emails = set()
        self.phones = set()

    def email(self, first, last, domain, style=None):
        rng = self.rng
        f, l = local_part(first), local_part(last)
        patterns = [f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}_{l}", f"{f}.{l}{rng.randrange(1, 99)}",
                    f"{f}{l[0]}{rng.randrange(60, 99)}", f"{l}.{f}", f"{f}{rng.randrange(100, 9999)}"]
        order = [style] if style is not None else []
        order += rng.sample(range(len(patterns)), len(patterns))
        for i in order:
            candidate = f"{patterns[i]}@{domain}"
            if candidate not in self.emails:
                self.emails.add(candidate)
                return candidate
        while True:
            candidate = f"{f}.{l}{rng.randrange(100, 100000)}@{domain}"
            if candidate not in self.emails:
                self.emails.add(candidate)
                return candidate

    def phone(self, area):
        while True:
            digits = f"{area}555{self.rng.randrange(10000):04d}"
            if digits not in self.phones and digits not in ("4155551212",):
                self.phones.add(digits)
                return digits


def make_people(n, rng):
    reg = Registry(rng)
    people = []
    hh_counter = 0

    def base(first, last, city):
        p = Person()
        p.pid = ""
        p.first, p.last = first, last
        p.middle = rng.choice(MIDDLE_INITIALS) if rng.random() < 0.3 else None
        p.birth = date(1946, 1, 1) + timedelta(days=rng.randrange(60 * 365))
        p.city = city
        c = CITIES[city]
        p.zip = c[3] + rng.randrange(c[4])
        p.number = rng.choice([rng.randrange(1, 200), rng.randrange(1, 2000), rng.randrange(100, 9999)])
        p.street_name = rng.choice(STREET_NAMES)
        p.street_type = rng.choice(STREET_TYPES)
        p.apt = rng.choice([f"Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}", f"Unit {rng.randrange(1, 300)}", f"#{rng.randrange(1, 80)}"]) if rng.random() < 0.22 else None
        p.ip = f"{rng.choice([24, 50, 66, 67, 68, 71, 73, 76, 96, 98, 107, 172, 174])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        p.work_email = reg.email(first, last, rng.choice(WORK_DOMAINS), style=rng.choice([0, 2, 0])) if rng.random() < 0.33 else None
        p.personal_email = reg.email(first, last, PERSONAL_DOMAIN(rng))
        p.household = None
        p.crm, p.crm_phones, p.orders, p.stripe_customer, p.handle, p.account = [], set(), [], None, None, None
        return p

    while len(people) < n:
        if rng.random() < HOUSEHOLD_START_RATE and n - len(people) >= 2:
            size = min(rng.choice([2, 2, 2, 3]), n - len(people))
            hh_counter += 1
            last = LAST(rng)
            city = CITY(rng)
            first_names = set()
            members = []
            while len(members) < size:
                first = FIRST(rng)
                if first in first_names:
                    continue
                first_names.add(first)
                members.append(base(first, last, city))
            head = members[0]
            home_phone = reg.phone(CITIES[city][5])
            # The family mailbox: "thegarciafamily@", "garcias@" or the head's own address.
            shared = rng.random()
            if shared < 0.5:
                mailbox = reg.email("the" + local_part(last), "family", PERSONAL_DOMAIN(rng), style=1)
            elif shared < 0.7:
                mailbox = reg.email(local_part(last) + "s", "home", PERSONAL_DOMAIN(rng), style=1)
            else:
                mailbox = head.personal_email
            births = set()
            for m in members:
                while m.birth in births:
                    m.birth = date(1946, 1, 1) + timedelta(days=rng.randrange(60 * 365))
                births.add(m.birth)
                m.household = hh_counter
                m.city, m.zip, m.number = head.city, head.zip, head.number
                m.street_name, m.street_type, m.apt, m.ip = head.street_name, head.street_type, head.apt, head.ip
                m.phone = home_phone
                m.mobile = reg.phone(rng.choice([CITIES[city][5], CITIES[CITY(rng)][5]]))
                m.crm_email = mailbox
                m.other_email = m.personal_email if m.personal_email != mailbox else (m.work_email or reg.email(m.first, last, PERSONAL_DOMAIN(rng)))
                people.append(m)
        else:
            p = base(FIRST(rng), LAST(rng), CITY(rng))
            # Some people moved: their number's area code is from another city.
            p.phone = reg.phone(CITIES[p.city][5] if rng.random() < 0.8 else CITIES[CITY(rng)][5])
            p.mobile = reg.phone(CITIES[p.city][5]) if rng.random() < 0.3 else None
            if p.work_email and rng.random() < 0.25:
                p.crm_email, p.other_email = p.work_email, p.personal_email
            else:
                p.crm_email = p.personal_email
                p.other_email = p.work_email or reg.email(p.first, p.last, PERSONAL_DOMAIN(rng))
            people.append(p)
    width = max(5, len(str(n)))
    for i, p in enumerate(people):
        p.pid = f"P{i + 1:0{width}d}"
    return people


def name_variant(rng, p, upper=0.0, lower=0.0, fold_=0.0, middle=0.0):
    first, last = p.first, p.last
    r = rng.random()
    if r < fold_:
        first, last = fold(first), fold(last)
    full = f"{first} {p.middle}. {last}" if p.middle and rng.random() < middle else f"{first} {last}"
    r = rng.random()
    if r < upper:
        return full.upper()
    if r < upper + lower:
        return full.lower()
    return full


def phone_numbers(p):
    """The numbers the CRM knows for a person."""
    return [x for x in (p.phone, p.mobile) if x]


# ---------------------------------------------------------------------------------------------
# Salesforce
# ---------------------------------------------------------------------------------------------

CRM_COLUMNS = ["Id", "FirstName", "LastName", "Email", "Phone", "MobilePhone", "MailingStreet", "MailingCity",
               "MailingState", "MailingPostalCode", "MailingCountry", "Birthdate", "HasOptedOutOfEmail",
               "AccountId", "CreatedDate", "LastModifiedDate"]


def gen_crm(people, rng):
    in_crm = [p for p in people if p.household or rng.random() < CRM_COVERAGE]
    contact_counter = 62 ** 4 * 9 + rng.randrange(62 ** 4)
    account_counter = 62 ** 4 * 5 + rng.randrange(62 ** 4)
    household_accounts = {}
    pending = []  # (created, person, is_duplicate)
    for p in in_crm:
        pending.append((random_time(rng, CRM_START, NOW - timedelta(days=30)), p, False))
        if rng.random() < CRM_DUPLICATE_RATE:
            pending.append((None, p, True))
    # Duplicates are created after the original; place them once originals have times.
    first_created = {}
    for created, p, dup in pending:
        if not dup:
            first_created[p.pid] = created
    rows = []
    final = []
    for created, p, dup in pending:
        if dup:
            created = random_time(rng, first_created[p.pid] + timedelta(days=1), NOW - timedelta(days=1))
        final.append((created, p, dup))
    final.sort(key=lambda t: (t[0], t[1].pid))
    for created, p, dup in final:
        contact_counter += rng.randrange(1, 60)
        cid = salesforce_id("003", contact_counter)
        if p.household:
            if p.household not in household_accounts:
                account_counter += rng.randrange(1, 40)
                household_accounts[p.household] = salesforce_id("001", account_counter)
            account = household_accounts[p.household]
        elif p.account and dup and rng.random() < 0.6:
            account = p.account
        else:
            account_counter += rng.randrange(1, 40)
            account = salesforce_id("001", account_counter)
        p.account = p.account or account
        c = p.c
        first, last = p.first, p.last
        email = p.crm_email
        phone_digits = p.phone
        phone = any_phone_format(rng, phone_digits) if rng.random() < 0.96 else ""
        if p.household:
            mobile = phone_as(p.mobile, rng.choice([0, 2, 3]))
        elif p.mobile:
            mobile = any_phone_format(rng, p.mobile)
        elif rng.random() < 0.1:
            mobile = any_phone_format(rng, phone_digits)
        else:
            mobile = ""
        street = p.street(short=rng.random() < 0.7, apt=True, sep="\n" if rng.random() < 0.25 else " ")
        state = rng.choices([c[1], c[2], c[1].lower()], [80, 15, 5])[0]
        country = rng.choices(["United States", "USA", "US", ""], [50, 25, 20, 5])[0]
        postal = p.zip5() if rng.random() < 0.9 else f"{p.zip5()}-{rng.randrange(1, 9999):04d}"
        birth = p.birth.isoformat() if rng.random() < 0.48 else ""
        if dup:
            r = rng.random()
            if r < 0.2 and p.first in NICKNAMES:
                first = NICKNAMES[p.first]
            elif r < 0.35:
                last = fold(last)
            r = rng.random()
            email = (p.crm_email.upper() if rng.random() < 0.3 else p.crm_email[0].upper() + p.crm_email[1:]) if r < 0.5 else (
                p.other_email if r < 0.75 else "")
            phone = rng.choice([any_phone_format(rng, phone_digits), any_phone_format(rng, phone_digits), ""])
            mobile = ""
            if rng.random() < 0.5:
                street = ""
            birth = birth if rng.random() < 0.3 else ""
            country = rng.choice(["", "US", "USA"])
        modified = random_time(rng, created, NOW) if rng.random() < 0.7 else created
        rows.append({
            "Id": cid, "FirstName": first, "LastName": last, "Email": email, "Phone": phone, "MobilePhone": mobile,
            "MailingStreet": street, "MailingCity": c[0], "MailingState": state, "MailingPostalCode": postal,
            "MailingCountry": country, "Birthdate": birth,
            "HasOptedOutOfEmail": "true" if rng.random() < 0.12 else "false", "AccountId": account,
            "CreatedDate": fmt_salesforce(created), "LastModifiedDate": fmt_salesforce(modified),
        })
        p.crm.append(cid)
        p.crm_phones.update(d for d, text in ((phone_digits, phone), (p.mobile, mobile)) if d and text)
        if mobile and not p.mobile:
            p.crm_phones.add(phone_digits)
    truth = [("crm", r["Id"], p.pid) for r, (_, p, _) in zip(rows, final)]
    return rows, truth


# ---------------------------------------------------------------------------------------------
# Shopify
# ---------------------------------------------------------------------------------------------

SHOP_COLUMNS = ["Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
                "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
                "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
                "Lineitem price", "Lineitem sku", "Lineitem fulfillment status", "Billing Name", "Billing Street",
                "Billing City", "Billing Zip", "Billing Province", "Billing Country", "Billing Phone",
                "Shipping Name", "Shipping Street", "Shipping City", "Shipping Zip", "Shipping Province",
                "Shipping Country", "Shipping Phone", "Notes", "Payment Method", "Refunded Amount", "Id", "Tags",
                "Source", "Phone"]
# Columns Shopify repeats on every line-item row of an order; the rest only on the first.
SHOP_LINE_COLUMNS = {"Name", "Email", "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price",
                     "Lineitem sku", "Lineitem fulfillment status"}


def gen_shop(people, rng):
    orders = []  # (created, person, order dict)
    for p in people:
        if rng.random() >= SHOP_RATE:
            continue
        for _ in range(rng.choices([1, 2, 3, 4], [45, 30, 15, 10])[0]):
            orders.append((random_time(rng, HISTORY_START, NOW - timedelta(hours=2)), p))
    orders.sort(key=lambda t: (t[0], t[1].pid))
    order_id = 5_012_000_000_000 + rng.randrange(10 ** 9)
    rows = []
    truth = []
    accepts = {}
    for number, (created, p) in enumerate(orders, start=1001):
        order_id += rng.randrange(3_000_000, 900_000_000)
        name = f"#{number}"
        c = p.c
        other = rng.random() < OTHER_EMAIL_ORDER_RATE
        email = p.other_email if other else p.crm_email
        if rng.random() < 0.03:
            email = email.capitalize()
        if other:  # another email than the CRM's: a phone the CRM has, so the order still joins
            billing_phone = any_phone_format(rng, rng.choice(sorted(p.crm_phones) or phone_numbers(p)))
        elif p.household:
            billing_phone = any_phone_format(rng, p.mobile if rng.random() < 0.7 else p.phone)
        else:
            billing_phone = any_phone_format(rng, rng.choice(phone_numbers(p))) if rng.random() < 0.7 else ""
        billing_name = name_variant(rng, p, upper=0.03, lower=0.04, fold_=0.06, middle=0.1)
        items = rng.sample(PRODUCTS, rng.choices([1, 2, 3, 4], [55, 28, 12, 5])[0])
        lines = [(prod, rng.choices([1, 2, 3], [85, 12, 3])[0]) for prod in items]
        subtotal = sum(prod[2] * q for prod, q in lines)
        discount_code, discount = ("WELCOME10", subtotal // 10) if rng.random() < 0.1 else ("", 0)
        shipping = 0 if subtotal - discount >= 7500 else 795
        taxes = round((subtotal - discount) * STATE_TAX[c[1]])
        total = subtotal - discount + shipping + taxes
        status = rng.choices(["paid", "pending", "refunded", "partially_refunded"], [86, 5, 4, 5])[0]
        if created > NOW - timedelta(days=3) and status == "paid":
            fulfillment = rng.choice(["unfulfilled", "fulfilled"])
        else:
            fulfillment = {"paid": "fulfilled", "pending": "unfulfilled", "refunded": rng.choice(["unfulfilled", "fulfilled"]),
                           "partially_refunded": rng.choice(["fulfilled", "partial"])}[status]
        paid_at = "" if status == "pending" else fmt_shopify(created + timedelta(seconds=rng.randrange(2, 120)))
        fulfilled = created + timedelta(hours=rng.randrange(6, 120))
        if fulfillment == "fulfilled" and fulfilled > NOW:
            fulfillment = "unfulfilled"
        fulfilled_at = fmt_shopify(fulfilled) if fulfillment == "fulfilled" else ""
        refunded = {"refunded": total, "partially_refunded": lines[0][0][2]}.get(status, 0)
        gift = rng.random() < 0.1
        if gift:
            recipient_first, recipient_last = FIRST(rng), LAST(rng)
            rc = CITIES[CITY(rng)]
            ship_name = f"{recipient_first} {recipient_last}"
            ship_street = f"{rng.randrange(1, 999)} {rng.choice(STREET_NAMES)} {rng.choice(STREET_TYPES)[1]}"
            ship_city, ship_zip, ship_prov, ship_phone = rc[0], f"{rc[3] + rng.randrange(rc[4]):05d}", rc[1], ""
        else:
            ship_name, ship_street = billing_name, p.street()
            ship_city, ship_zip, ship_prov, ship_phone = c[0], p.zip5(), c[1], billing_phone
        zip_text = ("'" if ZIP_APOSTROPHE else "") + p.zip5()
        if ZIP_APOSTROPHE:
            ship_zip = "'" + ship_zip
        accepts.setdefault(p.pid, rng.choice(["yes", "no"]))
        created_text = fmt_shopify(created)
        for i, (prod, qty) in enumerate(lines):
            row = {
                "Name": name, "Email": email, "Financial Status": status, "Paid at": paid_at,
                "Fulfillment Status": fulfillment, "Fulfilled at": fulfilled_at, "Accepts Marketing": accepts[p.pid],
                "Currency": "USD", "Subtotal": money(subtotal), "Shipping": money(shipping), "Taxes": money(taxes),
                "Total": money(total), "Discount Code": discount_code, "Discount Amount": money(discount),
                "Shipping Method": "Free Shipping" if shipping == 0 else "Standard", "Created at": created_text,
                "Lineitem quantity": str(qty), "Lineitem name": prod[0], "Lineitem price": money(prod[2]),
                "Lineitem sku": prod[1],
                "Lineitem fulfillment status": "fulfilled" if fulfillment == "fulfilled" else "pending",
                "Billing Name": billing_name, "Billing Street": p.street(short=True, apt=True, sep=", "),
                "Billing City": c[0], "Billing Zip": zip_text, "Billing Province": c[1], "Billing Country": "US",
                "Billing Phone": billing_phone, "Shipping Name": ship_name, "Shipping Street": ship_street,
                "Shipping City": ship_city, "Shipping Zip": ship_zip, "Shipping Province": ship_prov,
                "Shipping Country": "US", "Shipping Phone": ship_phone,
                "Notes": "Please leave at the back door, thanks!" if rng.random() < 0.02 else "",
                "Payment Method": rng.choices(["Shopify Payments", "PayPal Express Checkout", "Shop Pay"], [70, 15, 15])[0],
                "Refunded Amount": money(refunded), "Id": str(order_id),
                "Tags": rng.choice(["", "", "", "", "wholesale", "vip, repeat"]), "Source": "web",
                "Phone": e164(p.mobile or p.phone) if rng.random() < 0.25 else "",
            }
            if i > 0:
                row = {k: (v if k in SHOP_LINE_COLUMNS else "") for k, v in row.items()}
            rows.append((created, i, row))
        p.orders.append((name, created, [prod[0] for prod, _ in lines]))
        truth.append(("shop", name, p.pid))
    # Shopify exports newest first; an order's line items stay in their order.
    rows.sort(key=lambda t: (-t[0].timestamp(), t[1]))
    return [r for _, _, r in rows], truth


# ---------------------------------------------------------------------------------------------
# Stripe
# ---------------------------------------------------------------------------------------------

def gen_stripe(people, rng):
    invoices = []
    products = {name: "prod_" + random_token(rng, 14) for name, _, _ in STRIPE_PLANS + [(n, a, 0) for n, a in STRIPE_ADDONS]}
    prices = {name: "price_1" + random_token(rng, 23) for name in products}
    account_name = "Kinship Demo Goods, Inc."
    customers = [p for p in people if rng.random() < INVOICE_RATE]
    for p in customers:
        cus = "cus_" + random_token(rng, 14)
        p.stripe_customer = cus
        c = p.c
        plan_name, plan_amount, _ = rng.choices(STRIPE_PLANS, [s for _, _, s in STRIPE_PLANS])[0]
        seats = rng.randrange(2, 11) if plan_name.startswith("Team") else 1
        email = p.crm_email if rng.random() < 0.75 else p.other_email
        r = rng.random()
        cname = None if r < 0.1 else (f"{p.first} {p.last}".upper() if r < 0.3 else name_variant(rng, p, fold_=0.05, middle=0.15))
        phone = e164(rng.choice(phone_numbers(p))) if rng.random() < 0.3 else None
        address = None if rng.random() < 0.45 else {
            "city": c[0], "country": "US", "line1": p.street(short=True, apt=False), "line2": p.apt,
            "postal_code": p.zip5(), "state": c[1]}
        taxed = address is not None and rng.random() < 0.7
        send_invoice = rng.random() < 0.2
        metadata = {"salesforce_contact_id": p.crm[0]} if p.crm and rng.random() < 0.25 else {}
        count = rng.randrange(1, 9)
        start = random_time(rng, HISTORY_START, NOW - timedelta(days=31 * count + 1))
        sub = "sub_1" + random_token(rng, 23)
        number_prefix = random_token(rng, 8, "0123456789ABCDEF")
        for k in range(count):
            created = start + timedelta(days=30 * k, seconds=rng.randrange(-600, 600))
            last = k == count - 1
            if last:
                status = rng.choices(["paid", "open", "draft", "void", "uncollectible"], [74, 14, 6, 3, 3])[0]
            else:
                status = rng.choices(["paid", "void", "uncollectible"], [92, 5, 3])[0]
            lines = [(plan_name, plan_amount, seats)]
            if rng.random() < 0.12:
                addon = rng.choice(STRIPE_ADDONS)
                lines.append((addon[0], addon[1], 1))
            subtotal = sum(a * q for _, a, q in lines)
            tax = round(subtotal * STATE_TAX[c[1]]) if taxed else 0
            total = subtotal + tax
            paid = status == "paid"
            period_start = created - timedelta(days=30)
            finalized = None if status == "draft" else unix(created + timedelta(hours=1))
            inv_id = "in_1" + random_token(rng, 23)
            line_items = []
            for name, amount, qty in lines:
                line_items.append({
                    "id": "il_1" + random_token(rng, 23), "object": "line_item", "amount": amount * qty,
                    "currency": "usd", "description": f"{qty} \u00d7 {name} (at ${amount / 100:.2f} / month)" if name in PLAN_NAMES else name,
                    "discountable": True, "livemode": True, "metadata": {},
                    "period": {"end": unix(created), "start": unix(period_start)},
                    "price": {"id": prices[name], "object": "price", "active": True, "currency": "usd",
                              "product": products[name], "type": "recurring" if name in PLAN_NAMES else "one_time",
                              "unit_amount": amount, "unit_amount_decimal": str(amount)},
                    "proration": False, "quantity": qty,
                    "subscription": sub if name in PLAN_NAMES else None,
                    "type": "subscription" if name in PLAN_NAMES else "invoiceitem",
                })
            invoices.append((created, p, {
                "id": inv_id, "object": "invoice", "account_country": "US", "account_name": account_name,
                "amount_due": total, "amount_paid": total if paid else 0,
                "amount_remaining": 0 if paid or status in ("void",) else total,
                "attempt_count": 0 if status == "draft" or send_invoice else rng.randrange(1, 4) if status != "paid" else 1,
                "attempted": status not in ("draft",) and not send_invoice,
                "billing_reason": "subscription_create" if k == 0 else "subscription_cycle",
                "collection_method": "send_invoice" if send_invoice else "charge_automatically",
                "created": unix(created), "currency": "usd", "customer": cus, "customer_address": address,
                "customer_email": email, "customer_name": cname, "customer_phone": phone,
                "customer_shipping": None, "customer_tax_exempt": "none", "description": None,
                "due_date": unix(created + timedelta(days=30)) if send_invoice else None,
                "ending_balance": None if status == "draft" else 0,
                "hosted_invoice_url": None if status == "draft" else f"https://invoice.stripe.com/i/acct_1Kd3m0Pq8sT2uVwX/live_{random_token(rng, 40)}",
                "lines": {"object": "list", "data": line_items, "has_more": False, "total_count": len(line_items),
                          "url": f"/v1/invoices/{inv_id}/lines"},
                "livemode": True, "metadata": metadata,
                "number": None if status == "draft" else f"{number_prefix}-{k + 1:04d}",
                "paid": paid, "period_end": unix(created), "period_start": unix(period_start),
                "status": status,
                "status_transitions": {
                    "finalized_at": finalized,
                    "marked_uncollectible_at": unix(created + timedelta(days=20)) if status == "uncollectible" else None,
                    "paid_at": unix(created + timedelta(hours=1, seconds=rng.randrange(5, 300))) if paid else None,
                    "voided_at": unix(created + timedelta(days=3)) if status == "void" else None},
                "subscription": sub, "subtotal": subtotal, "tax": tax if taxed else None, "total": total,
            }))
    invoices.sort(key=lambda t: (-t[0].timestamp(), t[2]["id"]))  # the API lists newest first
    return [inv for _, _, inv in invoices], [("invoices", inv["id"], p.pid) for _, p, inv in invoices]


# ---------------------------------------------------------------------------------------------
# Zendesk
# ---------------------------------------------------------------------------------------------

def gen_zendesk(people, rng):
    users = {}  # ("email", address) or ("twitter", handle) -> (user id, name, email)
    next_user = 361_200_000_000 + rng.randrange(10 ** 9)
    agents = [361_100_000_000 + rng.randrange(10 ** 8) for _ in range(6)]
    raw = []  # (created, person, topic, order, channel)
    for p in people:
        if rng.random() >= TICKET_RATE:
            continue
        for _ in range(rng.choices([1, 2, 3], [65, 25, 10])[0]):
            topic = rng.choice([t for t in TICKET_TOPICS if p.orders or not t[3]])
            order = None
            if topic[3] and p.orders:
                order = rng.choice(p.orders)
                created = min(order[1] + timedelta(days=rng.randrange(1, 25), seconds=rng.randrange(86400)), NOW - timedelta(hours=1))
            else:
                created = random_time(rng, HISTORY_START, NOW - timedelta(hours=1))
            channel = rng.choices(["email", "web", "twitter"], [55, 35, 10])[0]
            raw.append((created, p, topic, order, channel))
    raw.sort(key=lambda t: (t[0], t[1].pid))
    tickets = []
    ticket_id = 35436
    for created, p, topic, order, channel in raw:
        ticket_id += rng.randrange(1, 4)
        if channel == "twitter":
            if not p.handle:
                p.handle = rng.choice([local_part(p.first) + local_part(p.last)[:4], local_part(p.first) + "_" + str(rng.randrange(10, 99)),
                                       local_part(p.last) + local_part(p.first)[0] + str(rng.randrange(70, 99))])
            key = ("twitter", p.handle)
            name = rng.choice([p.handle, p.first, f"{p.first} {p.last[0]}."])
            email = None
        else:
            email = p.crm_email if rng.random() < 0.6 else p.other_email
            key = ("email", email.lower())
            r = rng.random()
            name = (f"{p.first} {p.last}" if r < 0.7 else f"{p.first} {p.last}".lower() if r < 0.8
                    else p.first if r < 0.95 else f"{p.first} {p.last[0]}.")
        if key not in users:
            next_user += rng.randrange(1000, 5_000_000)
            users[key] = (next_user, name, email)
        uid, uname, uemail = users[key]
        item = order[2][0] if order else rng.choice(PRODUCTS)[0]
        order_name = order[0] if order else ""
        fill = {"order": order_name or "(no order number)", "item": item, "first": p.first,
                "day": (order[1] if order else created).strftime("%B %d").replace(" 0", " ")}
        subject = topic[0].format(**fill)
        description = topic[1].format(**fill)
        age = NOW - created
        if age > timedelta(days=30):
            status = rng.choices(["closed", "solved"], [80, 20])[0]
        elif age > timedelta(days=3):
            status = rng.choices(["solved", "pending", "open"], [60, 20, 20])[0]
        else:
            status = rng.choices(["new", "open", "pending"], [50, 35, 15])[0]
        updated = created + timedelta(minutes=rng.randrange(5, 60 * 24 * 6)) if status != "new" else created
        updated = min(updated, NOW)
        order_field = None
        if order and rng.random() < 0.8:
            order_field = order_name if rng.random() < 0.75 else order_name.lstrip("#")
        tags = list(topic[2]) + (["vip"] if rng.random() < 0.05 else [])
        custom_fields = [{"id": 360001234567, "value": order_field}, {"id": 360009876543, "value": rng.choice([None, "web_store", "subscription"])}]
        via_source = {"from": {"address": email, "name": name} if channel == "email" else {}, "to": {"address": "support@acme.zendesk.com", "name": "Acme Support"} if channel == "email" else {}, "rel": None}
        if channel == "twitter":
            via_source = {"from": {"name": name, "username": p.handle, "profile_url": f"https://twitter.com/{p.handle}"}, "to": {}, "rel": "mention"}
        tickets.append((updated, created, p, {
            "url": f"https://acme.zendesk.com/api/v2/tickets/{ticket_id}.json", "id": ticket_id, "external_id": None,
            "via": {"channel": channel, "source": via_source},
            "created_at": fmt_zendesk(created), "updated_at": fmt_zendesk(updated),
            "generated_timestamp": unix(updated),
            "type": rng.choice(["question", "incident", "problem", "task", None]),
            "subject": subject, "raw_subject": subject, "description": description,
            "priority": rng.choices(["normal", "high", "low", "urgent", None], [45, 10, 5, 2, 38])[0],
            "status": status, "recipient": "support@acme.zendesk.com" if channel == "email" else None,
            "requester_id": uid, "submitter_id": uid, "assignee_id": None if status == "new" else rng.choice(agents),
            "organization_id": None, "group_id": 360000111222, "collaborator_ids": [], "follower_ids": [],
            "email_cc_ids": [], "forum_topic_id": None, "problem_id": None, "has_incidents": False,
            "is_public": True, "due_at": None, "tags": tags, "custom_fields": custom_fields,
            "satisfaction_rating": {"score": rng.choice(["good", "bad", "offered", "unoffered"])} if status in ("solved", "closed") else None,
            "sharing_agreement_ids": [], "fields": custom_fields, "followup_ids": [], "ticket_form_id": 360000333444,
            "brand_id": 360000555666, "allow_channelback": channel == "twitter", "allow_attachments": True,
            "from_messaging_channel": False,
            "requester": {"id": uid, "name": uname, "email": uemail},
        }))
    tickets.sort(key=lambda t: (t[0], t[3]["id"]))  # incremental export: by updated_at
    return [t for _, _, _, t in tickets], [("helpdesk", str(t["id"]), p.pid) for _, _, p, t in tickets]


# ---------------------------------------------------------------------------------------------
# Mailchimp
# ---------------------------------------------------------------------------------------------

MAILCHIMP_COLUMNS = ["Email Address", "First Name", "Last Name", "Address", "Phone Number", "Birthday",
                     "MEMBER_RATING", "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LATITUDE",
                     "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC", "REGION", "LAST_CHANGED", "LEID", "EUID",
                     "NOTES", "TAGS"]


def gen_mailchimp(people, rng):
    seen = set()
    members = []
    leids, euids = set(), set()
    for p in people:
        if rng.random() >= MAILCHIMP_RATE:
            continue
        email = p.crm_email if rng.random() < 0.7 else p.other_email
        if email.lower() in seen:
            email = p.other_email
        if email.lower() in seen:
            continue  # an address is unique in an audience
        seen.add(email.lower())
        r = rng.random()
        if r < 0.04:
            email = email.upper()
        elif r < 0.08:
            loc, dom = email.split("@")
            email = ".".join(part.capitalize() for part in loc.split(".")) + "@" + dom.capitalize()
        named = rng.random() < 0.7
        c = p.c
        first = p.first if named else ""
        last = p.last if named and rng.random() < 0.85 else ""
        if named and rng.random() < 0.05:
            first, last = first.lower(), last.lower()
        address = f"{p.street()}  {c[0]}  {c[1]}  {p.zip5()}  US" if rng.random() < 0.2 else ""
        phone = any_phone_format(rng, rng.choice(phone_numbers(p))) if rng.random() < 0.25 else ""
        birthday = f"{p.birth.month:02d}/{p.birth.day:02d}" if rng.random() < 0.15 else ""
        double_optin = rng.random() < 0.7
        joined = random_time(rng, CRM_START, NOW - timedelta(days=2))
        if double_optin:
            optin, optin_ip = fmt_mailchimp(joined), p.ip
            confirm = joined + timedelta(seconds=rng.randrange(30, 3600))
            confirm_ip = p.ip
        else:
            optin, optin_ip, confirm, confirm_ip = "", "", joined, ""
        changed = random_time(rng, confirm, NOW) if rng.random() < 0.5 else confirm
        if confirm_ip:
            zone = c[6]
            std, dst = ZONE_OFFSETS[zone]
            geo = [f"{c[7] + rng.uniform(-0.08, 0.08):.7f}", f"{c[8] + rng.uniform(-0.08, 0.08):.7f}",
                   str(std), str(dst), zone, "US", c[1]]
        else:
            geo = [""] * 7
        while True:
            leid = str(rng.randrange(10 ** 8, 10 ** 9))
            if leid not in leids:
                leids.add(leid)
                break
        while True:
            euid = random_token(rng, 10, "0123456789abcdef")
            if euid not in euids:
                euids.add(euid)
                break
        tags = rng.choices(["", '"newsletter"', '"vip","newsletter"', '"Customer"', '"Customer","Spring Sale 2025"'], [50, 25, 8, 12, 5])[0]
        members.append((changed, p, dict(zip(MAILCHIMP_COLUMNS, [
            email, first, last, address, phone, birthday, str(rng.choices([1, 2, 3, 4, 5], [5, 55, 20, 12, 8])[0]),
            optin, optin_ip, fmt_mailchimp(confirm), confirm_ip, *geo, fmt_mailchimp(changed), leid, euid, "", tags]))))
    # Mailchimp lists members in the order they joined the audience.
    members.sort(key=lambda t: (t[2]["CONFIRM_TIME"], t[2]["EUID"]))
    return [m for _, _, m in members], [("email", m["EUID"], p.pid) for _, p, m in members]


# ---------------------------------------------------------------------------------------------
# SurveyMonkey
# ---------------------------------------------------------------------------------------------

SURVEY_COLUMNS = ["Respondent ID", "Collector ID", "Start Date", "End Date", "IP Address", "Email Address",
                  "First Name", "Last Name", SURVEY_NPS_Q, SURVEY_REASON_Q]
SURVEY_SECOND_HEADER = ["", "", "", "", "", "", "", "", "Response", "Open-Ended Response"]


def gen_survey(people, rng):
    web_collector, email_collector = 431_000_000 + rng.randrange(10 ** 6), 431_000_000 + rng.randrange(10 ** 6, 2 * 10 ** 6)
    responses = []
    for p in people:
        if rng.random() >= SURVEY_RATE:
            continue
        end = random_time(rng, datetime(2025, 3, 1, tzinfo=UTC), NOW - timedelta(hours=1))
        start = end - timedelta(seconds=rng.randrange(40, 900))
        if p.crm and rng.random() < 0.6:
            collector = email_collector  # sent to the CRM contact list: the list's values
            email, first, last = p.crm_email, p.first, p.last
        else:
            collector = web_collector  # typed by the respondent
            email = "" if rng.random() < 0.35 else (p.crm_email if rng.random() < 0.6 else p.other_email)
            r = rng.random()
            first, last = (p.first, p.last) if r < 0.6 else (p.first.lower(), p.last.lower()) if r < 0.8 else (
                (fold(p.first), fold(p.last)) if r < 0.9 else (p.first, ""))
            if r > 0.97 and email:
                first, last = "", ""
        score = rng.choices(range(11), [2, 1, 1, 2, 2, 4, 5, 9, 18, 22, 20])[0]
        reason = rng.choice(SURVEY_REASONS)
        responses.append((end, p, [collector, fmt_surveymonkey(start), fmt_surveymonkey(end), p.ip, email, first, last, str(score), reason]))
    responses.sort(key=lambda t: (t[0], t[1].pid))
    respondent = 114_000_000_000 + rng.randrange(10 ** 9)
    rows = []
    for end, p, values in responses:
        respondent += rng.randrange(1000, 400_000)
        rows.append((end, p, [str(respondent)] + [str(v) for v in values]))
    rows.reverse()  # newest first, as SurveyMonkey exports
    return [r for _, _, r in rows], [("survey", r[0], p.pid) for _, p, r in rows]


# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------

KINSHIP_TOML = r'''# Kinship mapping for the exports written by scripts/gen_exports.py, written by hand:
# each source reads its file exactly as the system wrote it; only declared fields transform.

[resolve]
default_region = "US"     # the exports write US numbers without +1
# Strongest first. The system ids join one system's records of a person; email and phone
# join across systems. A family mailbox or home phone shared by several CRM contacts would
# put two crm_ids in one profile, so it is contested and joins nothing.
priority = ["crm_id", "stripe_customer_id", "zendesk_user_id", "email", "phone"]

[resolve.limits]
crm_id = 1
stripe_customer_id = 1
zendesk_user_id = 1

# Salesforce contacts (Data Loader CSV, every field quoted).
[sources.crm]
type = "csv"
path = "Contact.csv"
key = "Id"
priority = 1
timestamp = "LastModifiedDate"          # 2026-02-18T12:00:00.000+0000: read as is
identifiers = { crm_id = "Id", email = "Email", phone = ["Phone", "MobilePhone"] }
traits = { first_name = "FirstName", last_name = "LastName", street = "MailingStreet", city = "MailingCity", state = "MailingState", postcode = "MailingPostalCode", country = "MailingCountry", birth_date = "Birthdate", email_opt_out = "opted_out", crm_created_at = "created" }
fields.opted_out = { from = "HasOptedOutOfEmail", type = "boolean" }
fields.created = { from = "CreatedDate", format = "salesforce" }

# Shopify orders: one row per line item; rows 2+ of an order repeat its Name (the key), so
# they are duplicates of the first row and skipped (their line items are not properties).
[sources.shop]
type = "csv"
path = "orders_export.csv"
key = "Name"
priority = 2
timestamp = "Created at"                # 2026-02-18 11:58:03 -0500: read as is
identifiers = { email = "Email", phone = ["Billing Phone", "Phone"] }
traits = { first_name = "billing_first_name", last_name = "billing_last_name", street = "Billing Street", city = "Billing City", state = "Billing Province", postcode = "Billing Zip" }
event = { name = "Order Completed" }
properties = ["Name", "total", "Currency", "Financial Status", "Lineitem name", "Id"]
fields.total = { from = "Total", type = "number" }
fields.billing_first_name = { from = "Billing Name", name_part = "first", case = "title" }
fields.billing_last_name = { from = "Billing Name", name_part = "last", case = "title" }

# Stripe invoices: nested JSON, amounts in cents, Unix seconds.
[sources.invoices]
type = "jsonl"
path = "invoices.jsonl"
key = "id"
priority = 4
timestamp = "created"                   # Unix seconds: read as is
identifiers = { stripe_customer_id = "customer", crm_id = "metadata.salesforce_contact_id", email = "customer_email", phone = "customer_phone" }
traits = { first_name = "card_first_name", last_name = "card_last_name", city = "customer_address.city", postcode = "customer_address.postal_code", state = "customer_address.state" }
event = { name = "Invoice Issued" }
properties = ["number", "amount", "paid_amount", "currency", "status", "items"]
fields.amount = { from = "amount_due", minor_units = "currency" }
fields.paid_amount = { from = "amount_paid", minor_units = "currency" }
fields.items = { from = "lines.data", pick = ["description", "amount", "quantity"] }
fields.card_first_name = { from = "customer_name", name_part = "first", case = "title" }
fields.card_last_name = { from = "customer_name", name_part = "last", case = "title" }

# Zendesk tickets (incremental export), one JSON object per line.
[sources.helpdesk]
type = "jsonl"
path = "tickets.jsonl"
key = "id"
priority = 5
timestamp = "created_at"
identifiers = { zendesk_user_id = "requester.id", email = "requester.email" }
traits = { first_name = "requester_first_name", last_name = "requester_last_name" }
event = { name = "Ticket Created" }
properties = ["subject", "status", "priority", "channel", "tags", "custom_fields"]
fields.channel = { from = "via.channel" }
fields.requester_first_name = { from = "requester.name", name_part = "first", case = "title" }
fields.requester_last_name = { from = "requester.name", name_part = "last", case = "title" }

# Mailchimp audience export (subscribed). Birthday is MM/DD without a year: kept as its own
# trait, never as birth_date.
[sources.email]
type = "csv"
path = "members_export.csv"
key = "EUID"
priority = 3
timestamp = "LAST_CHANGED"              # YYYY-MM-DD HH:MM:SS in UTC: read as is
identifiers = { email = "Email Address", phone = "Phone Number" }
traits = { first_name = "First Name", last_name = "Last Name", birthday_month_day = "Birthday", time_zone = "TIMEZONE", member_rating = "rating", email_subscribed_at = "subscribed_at" }
fields.rating = { from = "MEMBER_RATING", type = "integer" }
fields.subscribed_at = { from = "CONFIRM_TIME", type = "timestamp" }

# SurveyMonkey responses. The second header row ("Response", ...) has no Respondent ID and
# is rejected (one reject, expected). Dates are month first, in the account's time zone.
[sources.survey]
type = "csv"
path = "survey_responses.csv"
key = "Respondent ID"
priority = 6
timestamp = "submitted"
identifiers = { email = "Email Address" }
traits = { first_name = "first_name", last_name = "last_name" }
event = { name = "Survey Answered" }
properties = ["score", "reason", "Collector ID"]
fields.submitted = { from = "End Date", format = "month_first", timezone = "America/Los_Angeles" }
fields.score = { from = "How likely is it that you would recommend us to a friend or colleague?", type = "integer" }
fields.reason = { from = "What is the main reason for your score?" }
fields.first_name = { from = "First Name", case = "title" }
fields.last_name = { from = "Last Name", case = "title" }
'''


# ---------------------------------------------------------------------------------------------
# Writing and checking
# ---------------------------------------------------------------------------------------------

def write_csv(path, columns, rows, quoting=csv.QUOTE_MINIMAL, lineterminator="\n", extra_header=None):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=quoting, lineterminator=lineterminator)
        w.writerow(columns)
        if extra_header:
            w.writerow(extra_header)
        for r in rows:
            w.writerow([r[c] for c in columns] if isinstance(r, dict) else r)


def write_jsonl(path, objects):
    with open(path, "w", newline="\n", encoding="utf-8") as f:
        for o in objects:
            f.write(json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n")


def generate(n, seed, out):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    people = make_people(n, rng)
    # One generator per export, derived from the seed, so that each file stays the same
    # when another export's generator changes.
    sub = lambda name: random.Random(f"{seed}:{name}")  # noqa: E731
    crm_rows, crm_truth = gen_crm(people, sub("crm"))
    shop_rows, shop_truth = gen_shop(people, sub("shop"))
    invoices, inv_truth = gen_stripe(people, sub("stripe"))
    tickets, ticket_truth = gen_zendesk(people, sub("zendesk"))
    members, member_truth = gen_mailchimp(people, sub("mailchimp"))
    responses, survey_truth = gen_survey(people, sub("survey"))

    write_csv(os.path.join(out, "Contact.csv"), CRM_COLUMNS, crm_rows, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    write_csv(os.path.join(out, "orders_export.csv"), SHOP_COLUMNS, shop_rows)
    write_jsonl(os.path.join(out, "invoices.jsonl"), invoices)
    write_jsonl(os.path.join(out, "tickets.jsonl"), tickets)
    write_csv(os.path.join(out, "members_export.csv"), MAILCHIMP_COLUMNS, members, quoting=csv.QUOTE_ALL)
    write_csv(os.path.join(out, "survey_responses.csv"), SURVEY_COLUMNS, responses, lineterminator="\r\n",
              extra_header=SURVEY_SECOND_HEADER)
    truth = crm_truth + shop_truth + inv_truth + ticket_truth + member_truth + survey_truth
    write_csv(os.path.join(out, "truth.csv"), ["source", "record_key", "person_id"], truth)
    with open(os.path.join(out, "kinship.toml"), "w", encoding="utf-8") as f:
        f.write(KINSHIP_TOML)
    return people


def check(out):
    """Re-reads every file: parses, keys unique, truth complete. Returns {file: records}."""
    def read_csv(name):
        with open(os.path.join(out, name), newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def read_jsonl(name):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    truth = read_csv("truth.csv")
    by_source = {}
    for t in truth:
        keys = by_source.setdefault(t["source"], {})
        assert t["record_key"] not in keys, f"truth: {t['source']} key {t['record_key']} twice"
        keys[t["record_key"]] = t["person_id"]
    found = {
        "crm": [r["Id"] for r in read_csv("Contact.csv")],
        "shop": list(dict.fromkeys(r["Name"] for r in read_csv("orders_export.csv"))),
        "invoices": [o["id"] for o in read_jsonl("invoices.jsonl")],
        "helpdesk": [str(o["id"]) for o in read_jsonl("tickets.jsonl")],
        "email": [r["EUID"] for r in read_csv("members_export.csv")],
        "survey": [r["Respondent ID"] for r in read_csv("survey_responses.csv")][1:],  # row 1: second header
    }
    for source, keys in found.items():
        assert len(keys) == len(set(keys)), f"{source}: duplicate record keys"
        assert all(keys), f"{source}: blank record key"
        assert set(keys) == set(by_source.get(source, {})), f"{source}: truth does not cover exactly the records"
    return {s: len(k) for s, k in found.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="exports")
    ap.add_argument("--check", action="store_true", help="re-read the files and verify them")
    args = ap.parse_args(argv)
    if args.people < 2:
        ap.error("--people must be at least 2")
    generate(args.people, args.seed, args.out)
    if args.check:
        counts = check(args.out)
        print("ok: " + ", ".join(f"{s} {c}" for s, c in counts.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
