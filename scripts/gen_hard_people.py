#!/usr/bin/env python3
"""Deterministic generator of messy person records with ground truth, for benchmarking fuzzy
deduplication (`kinship dedupe`, Splink, recordlinkage) on data that is harder than FEBRL.

Usage:
    python3 scripts/gen_hard_people.py --records 1000000 --out hard1m.csv [--seed 7] [--no-contact]

Output: CSV with a header, comma separated, no padding:
    rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,
    date_of_birth,soc_sec_id,email,phone            (--no-contact drops email and phone)
`rec_id` follows FEBRL: `rec-<entity>-org` is an original, `rec-<entity>-dup-<k>` its k-th
duplicate; records sharing <entity> describe the same person, every other pair does not.
The same --records/--seed always give a byte-identical file. Rows are written in shuffled order
(external bucket shuffle, so memory stays bounded), so file order says nothing about identity.

What is in the data, and why (each property defeats a shortcut a matcher could lean on):
  * ~10% of records are duplicates: most duplicated people have 1 duplicate, a few 2-4
    (true clusters of 2-5 records), like FEBRL's dataset shapes.
  * Names are long-tailed: given names and surnames are drawn from a Zipf-Mandelbrot law
    (exponent ~1.0-1.05) over a large vocabulary (~8,000 surnames, ~1,700 given names: real
    common names first, then pronounceable made-up names built from syllables). Frequent
    names make name agreement weak evidence; rare names make it strong: a matcher must weigh
    agreement by value frequency (or block carefully) to get both right.
  * Accented and non-Latin names (josé, zoë, sørensen, łukasz, müller, garcía, núñez, françois,
    a small share of Greek and Cyrillic names): duplicates may drop accents (müller -> mueller or
    muller) or be transliterated (иванов -> ivanov), so byte comparison is not enough.
  * Suburbs (~3,000, Zipf-like popularity) each have exactly one postcode and one state, so
    suburb/postcode/state always agree together (they are one piece of evidence, not three:
    a matcher that treats them as independent overcounts a shared locality).
  * Families (~20% of people) live in households of 2-5 sharing surname, street number,
    address, suburb, postcode, state, mostly one email mailbox and a home phone, but each has
    an own given name, date of birth (parents 25-40 years older than children; occasional twins
    with the same dob; occasional "junior" sons named after their father) and soc_sec_id.
    These are the classic false positives: almost everything agrees, yet they are different people.
  * Common-name collisions: different people with the same given name and surname in the same
    suburb (from the Zipf draws, plus a few injected namesakes), so name+place is not identity.
  * soc_sec_id: 7-9 digits, unique per person, missing for ~30% (a strong but partial key).
  * email: mostly derived from the name (first.last@, flast12@, ...), free-mail and other
    domains, missing for ~25%; phone: Australian mobile `04xx xxx xxx` or landline, missing
    for ~30%. Shared family mailboxes/phones mean contact agreement is not identity either.
  * date_of_birth is written as YYYYMMDD, YYYY-MM-DD or DD/MM/YYYY depending on the record,
    a few missing: formats must be normalised before comparing.
  * Each duplicate gets 1-3 corruptions: typo (insert/delete/substitute with a keyboard
    neighbour/transpose), blanked field, given name and surname swapped, day/month swapped
    in the dob, nickname (william -> bill, katherine -> kate, ...), street type abbreviated
    (street -> st), moved house (new street/suburb/postcode/state together), email case change
    or plus-addressing, phone written with +61 or other spacing, accents dropped/transliterated,
    upper case.
  * Missing values are mostly empty strings, occasionally the literal `NULL` or `n/a`
    (depending on the "source system" of the record), as in real exports.
"""
import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import time
import unicodedata
from bisect import bisect
from collections import Counter
from itertools import accumulate

# --------------------------------------------------------------------------------------------
# Vocabulary: real common names first (they take the top Zipf ranks), made-up names after.
# --------------------------------------------------------------------------------------------

CORE_SURNAMES = """smith nguyen jones williams brown wilson taylor johnson white martin anderson
thompson tran walker harris lee ryan robinson kelly king davis wright evans roberts green hall
wood jackson clarke patel khan lewis james phillips mitchell campbell murphy o'brien singh
garcía müller wang li chen zhang liu le pham huynh hoang phan vo dang bui do ho ngo duong ly
turner parker cook edwards hill scott young morris ward baker morgan cooper allen stewart
bell collins murray bailey hughes graham reid ross watson mclean mckenzie johnston gray
van der berg o'connor o'neill d'angelo de jong van dijk de la cruz mcdonald macdonald
rossi russo ferrari esposito bianchi romano colombo ricci marino greco costa fontana
papadopoulos georgiou nikolaidis economou kowalski nowak wiśniewski wójcik kowalczyk kamiński
lewandowski dvořák novák sørensen jørgensen hansen nielsen andersen larsen åberg
martínez rodríguez gonzález pérez sánchez lópez hernández jiménez gómez díaz núñez álvarez
schröder köhler schmidt schneider fischer weber meyer wagner becker hoffmann krüger
dubois lefèvre moreau laurent girard françois rousseau fournier
sharma kumar gupta reddy rao iyer das chatterjee ahmed ali hussain rahman hassan ibrahim
kim park choi jung kang cho yoon tanaka suzuki sato watanabe takahashi yamamoto
wu zhou xu sun ma zhu hu guo he lin luo gao zheng
walsh byrne o'sullivan doyle mcCarthy brennan fitzgerald gallagher kennedy quinn
fraser hamilton sutherland mackay cameron munro douglas ferguson henderson paterson
yılmaz kaya demir çelik şahin öztürk
adams barnes bennett brooks butler carter cox dixon ellis fisher ford foster gibson gordon
grant harrison hayes holmes hunt jenkins knight lawrence marshall mason matthews miller
mills moore owen palmer pearce porter powell price richards richardson rogers russell
saunders shaw simpson spencer stevens sullivan thomas thomson tucker walters watts webb
west wheeler wong chan cheung lam yip ho tsang""".split()
# multi-word surnames were split above; stitch the known ones back together
_MULTI = ["van der berg", "de jong", "van dijk", "de la cruz"]


def _core_surnames():
    words, out, i = CORE_SURNAMES, [], 0
    while i < len(words):
        for m in _MULTI:
            parts = m.split()
            if words[i:i + len(parts)] == parts:
                out.append(m)
                i += len(parts)
                break
        else:
            out.append(words[i].lower())
            i += 1
    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


CORE_MALE = """james john william robert michael david thomas daniel matthew christopher andrew
joshua benjamin samuel jack oliver nicholas jacob alexander lachlan ethan liam noah lucas
anthony joseph richard edward peter steven timothy patrick gregory jeffrey kenneth ronald
donald charles henry lawrence frederick zachary jonathan nathan francis harrison cooper
mason riley hamish angus declan connor jayden tyler kai luca marco giovanni antonio
josé juan carlos luis miguel łukasz piotr krzysztof tomasz françois pierre jean andré rené
jürgen stefan klaus sven søren lars anders mohammed ahmed omar ali hassan raj arjun aarav
rahul vikram minh anh tuan duc huy wei jun hao ming kenji hiroshi takumi seo-jun min-jun
aidan brendan callum dylan ewan finn gavin isaac jasper kieran levi max owen reuben toby""".split()
CORE_FEMALE = """olivia charlotte mia amelia isla ava grace chloe emily sophie ruby zoë
elizabeth katherine catherine margaret jennifer rebecca jessica samantha victoria alexandra
patricia susan deborah christine kimberley stephanie amanda abigail isabella josephine
jacqueline natalie madeleine eleanor penelope dorothy barbara theresa gabrielle sarah laura
hannah emma lucy ella matilda harper willow georgia zara maria ana lucía sofía valentina
agnieszka małgorzata katarzyna anna ewa hélène amélie céline françoise ingrid astrid
sigrid björk fatima aisha mariam zainab priya ananya diya kavya linh thảo mai lan hoa
mei xin yan jing yuki sakura hana ji-woo seo-yeon leah megan nicole rachel tara yasmin""".split()

NICKNAMES = {
    "william": ["bill", "will", "billy", "liam"], "robert": ["bob", "rob", "bobby", "robbie"],
    "james": ["jim", "jimmy", "jamie"], "john": ["jack", "johnny", "jon"],
    "michael": ["mike", "mick", "mikey"], "richard": ["rick", "dick", "richie"],
    "thomas": ["tom", "tommy"], "christopher": ["chris", "kit"], "daniel": ["dan", "danny"],
    "matthew": ["matt"], "anthony": ["tony", "ant"], "joseph": ["joe", "joey"],
    "david": ["dave", "davo"], "edward": ["ed", "ted", "eddie"], "benjamin": ["ben", "benji"],
    "alexander": ["alex", "sandy", "xander"], "samuel": ["sam", "sammy"],
    "nicholas": ["nick", "nico"], "jonathan": ["jon", "jonny"], "andrew": ["andy", "drew"],
    "steven": ["steve"], "timothy": ["tim", "timmy"], "patrick": ["pat", "paddy"],
    "peter": ["pete"], "gregory": ["greg"], "jeffrey": ["jeff"], "kenneth": ["ken", "kenny"],
    "ronald": ["ron", "ronnie"], "donald": ["don"], "charles": ["charlie", "chuck", "chas"],
    "henry": ["harry", "hank"], "lawrence": ["larry", "laurie"], "frederick": ["fred", "freddie"],
    "zachary": ["zach"], "joshua": ["josh"], "jacob": ["jake"], "nathan": ["nate"],
    "francis": ["frank"], "lachlan": ["lachie"], "harrison": ["harry"], "josé": ["pepe"],
    "elizabeth": ["liz", "beth", "lizzie", "betty", "eliza"], "katherine": ["kate", "kathy", "katie", "kat"],
    "catherine": ["cathy", "cate", "cat"], "margaret": ["maggie", "peggy", "meg", "marge"],
    "jennifer": ["jen", "jenny"], "rebecca": ["becky", "bec"], "jessica": ["jess", "jessie"],
    "samantha": ["sam", "sammy"], "victoria": ["vicky", "tori"], "alexandra": ["alex", "lexi", "sandra"],
    "patricia": ["pat", "trish", "patty"], "susan": ["sue", "susie"], "deborah": ["deb", "debbie"],
    "christine": ["chris", "chrissy"], "kimberley": ["kim"], "stephanie": ["steph"],
    "amanda": ["mandy"], "abigail": ["abby"], "isabella": ["bella", "izzy"],
    "josephine": ["jo", "josie"], "jacqueline": ["jackie"], "natalie": ["nat"],
    "madeleine": ["maddy"], "olivia": ["liv", "livvy"], "charlotte": ["charlie", "lottie"],
    "eleanor": ["ellie", "nell"], "penelope": ["penny"], "dorothy": ["dot", "dottie"],
    "barbara": ["barb"], "theresa": ["tess", "terri"], "gabrielle": ["gabby"], "sophie": ["soph"],
    "emily": ["em"], "amelia": ["millie"], "matilda": ["tilly"], "georgia": ["georgie"],
}

# Greek and Cyrillic names with the transliteration a duplicate may carry instead.
NON_LATIN = {
    "greek": {
        "m": [("γιώργος", "giorgos"), ("δημήτρης", "dimitris"), ("νίκος", "nikos"),
              ("κωνσταντίνος", "konstantinos"), ("ιωάννης", "ioannis"), ("παναγιώτης", "panagiotis")],
        "f": [("μαρία", "maria"), ("ελένη", "eleni"), ("αικατερίνη", "aikaterini"),
              ("σοφία", "sofia"), ("αναστασία", "anastasia"), ("δέσποινα", "despoina")],
        "s": [("παπαδόπουλος", "papadopoulos"), ("παπαδάκης", "papadakis"), ("γεωργίου", "georgiou"),
              ("νικολάου", "nikolaou"), ("οικονόμου", "oikonomou"), ("βασιλείου", "vasileiou"),
              ("ιωάννου", "ioannou"), ("κωνσταντίνου", "konstantinou")],
    },
    "cyrillic": {
        "m": [("иван", "ivan"), ("дмитрий", "dmitry"), ("сергей", "sergey"), ("алексей", "alexey"),
              ("андрей", "andrey"), ("михаил", "mikhail")],
        "f": [("ольга", "olga"), ("наталья", "natalya"), ("елена", "elena"), ("татьяна", "tatyana"),
              ("анна", "anna"), ("ирина", "irina")],
        "s": [("иванов", "ivanov"), ("смирнов", "smirnov"), ("кузнецов", "kuznetsov"), ("попов", "popov"),
              ("соколов", "sokolov"), ("петренко", "petrenko"), ("шевченко", "shevchenko"),
              ("коваленко", "kovalenko")],
    },
}
TRANSLIT = {native: latin for script in NON_LATIN.values() for part in script.values() for native, latin in part}

STREET_TYPES = [("street", "st", 30), ("road", "rd", 18), ("avenue", "ave", 10), ("drive", "dr", 9),
                ("place", "pl", 7), ("court", "ct", 6), ("crescent", "cres", 5), ("parade", "pde", 3),
                ("close", "cl", 3), ("lane", "ln", 2), ("terrace", "tce", 2), ("circuit", "cct", 2),
                ("way", "wy", 2), ("highway", "hwy", 1)]
STREET_ABBREV = {full: short for full, short, _ in STREET_TYPES}
CORE_STREETS = """high church station park george victoria king queen william main railway elizabeth
albert john charles james bridge hill mill river beach ocean forest smith wattle banksia
acacia jacaranda waratah kurrajong boronia grevillea tullaroop gundulu hoseason wallaby
kangaroo emu lyrebird kookaburra pacific princes bay marine esplanade anzac macquarie
flinders collins bourke swanston hunter sussex kent pitt oxford cambridge""".split()

STATES = [("nsw", "2", 32), ("vic", "3", 26), ("qld", "4", 20), ("wa", "6", 10), ("sa", "5", 7),
          ("tas", "7", 2), ("act", "26", 2), ("nt", "08", 1)]
AREA_CODE = {"nsw": "02", "act": "02", "vic": "03", "tas": "03", "qld": "07", "sa": "08", "wa": "08", "nt": "08"}

FREE_MAIL = [("gmail.com", 30), ("hotmail.com", 12), ("outlook.com", 8), ("bigpond.com", 8),
             ("yahoo.com.au", 6), ("icloud.com", 6), ("optusnet.com.au", 4), ("live.com.au", 3),
             ("iinet.net.au", 2), ("tpg.com.au", 2)]
PLUS_TAGS = ["shop", "news", "promo", "ebay", "2019", "bills", "x"]
PROPERTY_NAMES = ["willaroo", "killarney", "rowethorpe", "sherwood", "brentwood", "oakdale", "rockview",
                  "arcadia", "brookvale", "rosedale", "glenmore", "the willows", "gull cottage",
                  "banksia village", "rosetta village", "lakeside retirement village",
                  "st francis village", "berkeley court"]

ONSETS = ["b", "br", "c", "ch", "cl", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n",
          "p", "pr", "r", "s", "sh", "st", "t", "tr", "v", "w", "z", "th", "bl", "fl", "kr", "sl"]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "ie", "y", "ee", "oo"]
CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd", "rt", "ll", "st", "ck", "th", "ng"]
SURNAME_ENDS = ["son", "ton", "ley", "well", "ham", "ford", "man", "er", "by", "wood", "field",
                "ridge", "worth", "ini", "elli", "ov", "ovic", "ski", "sen", "berg", "stein", "ez",
                "es", "os", "idis", "akis", "escu", "ian", "yan", "ak", "ic", "ing", "ell", "ett"]
FEMALE_ENDS = ["a", "ia", "elle", "ine", "ie", "ette", "ina", "ey", "lyn", "ara", "issa"]
MALE_ENDS = ["o", "an", "er", "el", "us", "en", "on", "ie", "iel", "as", "ard", "ric"]
SUBURB_FORMS = ["{}", "{}", "{}", "{}ville", "{} park", "{} heights", "{} hill", "{} vale",
                "north {}", "south {}", "east {}", "west {}", "mount {}", "{} beach", "{} creek",
                "port {}", "{} bay", "{}dale", "{} downs", "{} point"]

COLUMNS = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb",
           "postcode", "state", "date_of_birth", "soc_sec_id", "email", "phone"]

# duplicate corruptions and their relative weights (inapplicable ones fall through to the next)
CORRUPTIONS = [("typo", 30), ("blank", 12), ("nickname", 8), ("street_abbrev", 8), ("phone_format", 8),
               ("accent", 30), ("dob_swap", 6), ("email_variant", 6), ("swap_names", 5),
               ("upper", 5), ("moved", 3)]
TYPO_FIELDS = [("given_name", 25), ("surname", 25), ("address_1", 15), ("suburb", 10),
               ("street_number", 5), ("postcode", 5), ("date_of_birth", 5), ("soc_sec_id", 5),
               ("email", 3), ("phone", 2)]
LATE = {"typo", "blank", "upper", "email_variant", "phone_format"}   # applied after formatting
BLANK_FIELDS = [("given_name", 10), ("surname", 6), ("street_number", 10), ("address_1", 8),
                ("address_2", 12), ("suburb", 6), ("postcode", 6), ("state", 6),
                ("date_of_birth", 10), ("soc_sec_id", 12), ("email", 10), ("phone", 10)]

KEYBOARD = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"]
NEIGHBOURS = {}
for _r, _row in enumerate(KEYBOARD):
    for _c, _ch in enumerate(_row):
        near = []
        for dr in (-1, 0, 1):
            rr = _r + dr
            if 0 <= rr < len(KEYBOARD):
                for dc in (-1, 0, 1):
                    cc = _c + dc
                    if (dr or dc) and 0 <= cc < len(KEYBOARD[rr]):
                        near.append(KEYBOARD[rr][cc])
        NEIGHBOURS[_ch] = "".join(near)

SPECIAL_FOLD = {"ø": ["o", "oe"], "å": ["a", "aa"], "æ": ["ae"], "ß": ["ss"], "ł": ["l"],
                "ü": ["u", "ue"], "ö": ["o", "oe"], "ä": ["a", "ae"], "ı": ["i"], "đ": ["d"]}


def fold(s, rng=None):
    """Drop accents: müller -> muller (or mueller when rng is given and picks the German way)."""
    if s.isascii():
        return s
    if s in TRANSLIT:
        return TRANSLIT[s]
    out = []
    for ch in s:
        alts = SPECIAL_FOLD.get(ch)
        if alts:
            out.append(alts[0] if rng is None else rng.choice(alts))
        else:
            out.append("".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)))
    return "".join(out)


class Zipf:
    """Zipf-Mandelbrot sampler over a list: weight of rank k is 1/(k+q)^s."""

    def __init__(self, items, s, q, rng):
        self.items = items
        self.cum = list(accumulate(1.0 / (k + q) ** s for k in range(1, len(items) + 1)))
        self.total = self.cum[-1]
        self.random = rng.random

    def __call__(self):
        return self.items[bisect(self.cum, self.random() * self.total)]

    def share_of_top(self):
        return self.cum[0] / self.total


class Weighted:
    def __init__(self, pairs, rng):
        self.items = [p[0] for p in pairs]
        self.cum = list(accumulate(p[-1] for p in pairs))
        self.random = rng.random

    def __call__(self):
        return self.items[bisect(self.cum, self.random() * self.cum[-1])]


FINALS = ["n", "r", "l", "s", "m", "t", "d", "k", "x", "th", "sh", "nd", "rd", "ll", "ck", "ng"]
# made-up names are built from syllables, so keep them clear of rude words
RUDE = ("fuck", "shit", "cunt", "cock", "piss", "nigg", "nigr", "fag", "slut", "whor", "rape", "twat",
        "wank", "porn", "sex", "anus", "arse", "bitch", "dick", "prick", "bastard", "homo", "nazi",
        "cum", "tits", "crap", "dildo", "jizz", "semen", "penis", "vagin", "boob", "poo", "puss", "kkk")


def made_up_names(rng, count, ends, taken, min_len=4, max_len=11):
    out = []
    while len(out) < count:
        parts = [rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(rng.choice((1, 1, 2)))]
        name = "".join(parts) + (rng.choice(ends) if rng.random() < 0.75 else rng.choice(VOWELS) + rng.choice(FINALS))
        if min_len <= len(name) <= max_len and name not in taken and not any(r in name for r in RUDE):
            taken.add(name)
            out.append(name)
    return out


class World:
    """All vocabularies and samplers, built deterministically from the seed."""

    def __init__(self, rng):
        self.rng = rng
        taken = set()
        core_s = _core_surnames()
        taken.update(core_s)
        surnames = core_s + made_up_names(rng, 8000 - len(core_s), SURNAME_ENDS, taken)
        male = list(dict.fromkeys(CORE_MALE))
        female = list(dict.fromkeys(CORE_FEMALE))
        taken.update(male + female)
        male += made_up_names(rng, 850 - len(male), MALE_ENDS, taken, 3, 9)
        female += made_up_names(rng, 850 - len(female), FEMALE_ENDS, taken, 3, 9)
        # a little shuffling inside the head keeps "smith" first but mixes the rest of the core
        head = surnames[5:len(core_s)]
        rng.shuffle(head)
        surnames[5:len(core_s)] = head
        self.surname = Zipf(surnames, 1.05, 15, rng)
        self.given = {"m": Zipf(male, 1.0, 4, rng), "f": Zipf(female, 1.0, 4, rng)}
        self.n_surnames, self.n_given = len(surnames), len(male) + len(female)

        streets = list(CORE_STREETS) + made_up_names(rng, 1500, ["", "", "", "a", "ee", "ton", "wood", "dale", "more", "bury"], set(CORE_STREETS), 3, 11)
        self.street = Zipf(streets, 0.9, 10, rng)
        self.street_type = Weighted(STREET_TYPES, rng)

        # suburbs: unique names; each gets one state and one postcode (a few share a postcode)
        state_pick = Weighted(STATES, rng)
        names, seen = [], set()
        stems = made_up_names(rng, 3000, ["", "", "ton", "wood", "ford", "field", "bury", "ley", "ridge", "brook", "vale", "more"], set(), 4, 12)
        for stem in stems:
            name = rng.choice(SUBURB_FORMS).format(stem)
            if name not in seen:
                seen.add(name)
                names.append(name)
        self.suburbs = []
        used_pc, last_pc = set(), {}
        for name in names:
            state = state_pick()
            prefix = dict((s, p) for s, p, _ in STATES)[state]
            if state in last_pc and rng.random() < 0.15:   # neighbouring suburbs share a postcode
                pc = last_pc[state]
            else:
                while True:
                    pc = prefix + "".join(rng.choice("0123456789") for _ in range(4 - len(prefix)))
                    if pc not in used_pc:
                        break
                used_pc.add(pc)
            last_pc[state] = pc
            self.suburbs.append((name, pc, state))
        self.suburb = Zipf(list(range(len(self.suburbs))), 1.0, 20, rng)

        domains = [d for d in FREE_MAIL]
        work = made_up_names(rng, 300, ["", "tech", "group", "co", "net", "mail", "law", "health"], set(), 4, 12)
        tlds = ["com.au", "com.au", "net.au", "com", "org.au", "edu.au", "gov.au"]
        domains += [(w + "." + rng.choice(tlds), 23.0 / (i + 3)) for i, w in enumerate(work)]
        self.domain = Weighted(domains, rng)
        self.handles = made_up_names(rng, 400, ["", "y", "o", "ster", "z"], set(), 3, 9)
        self.properties = PROPERTY_NAMES + \
            made_up_names(rng, 200, ["", " lodge", " farm", " house", " village", " court", " gardens"], set(), 5, 16)


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------

TODAY = (2024, 6, 30)
DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


class Person:
    __slots__ = ("gender", "given", "surname", "script", "street_number", "address_1", "address_2",
                 "suburb", "dob", "ssn", "email", "phone")


class Generator:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.w = World(self.rng)
        self.used_ssn = set()
        self.used_email = set()
        self.reservoir = []          # recent (gender, given, surname, suburb) for namesakes
        self.namesakes = 0
        self.twins = 0
        self.juniors = 0

    # ---- person attributes ----
    def names(self, gender, script=None):
        if script:
            return self.rng.choice(NON_LATIN[script][gender])[0], self.rng.choice(NON_LATIN[script]["s"])[0]
        return self.w.given[gender](), self.w.surname()

    def dob_for_age(self, age):
        rng = self.rng
        y = TODAY[0] - age
        m = rng.randint(1, 12)
        dim = DAYS_IN_MONTH[m - 1] + (1 if m == 2 and y % 4 == 0 and (y % 100 or y % 400 == 0) else 0)
        return (y, m, rng.randint(1, dim))

    def adult_age(self):
        return 18 + int(self.rng.betavariate(2.0, 3.2) * 75)

    def ssn(self):
        rng = self.rng
        if rng.random() < 0.30:
            return None
        digits = rng.choice((7, 7, 8, 8, 9))
        while True:
            v = rng.randrange(10 ** (digits - 1), 10 ** digits)
            if v not in self.used_ssn:
                self.used_ssn.add(v)
                return str(v)

    def address(self):
        rng, w = self.rng, self.w
        sub = w.suburb()
        num = str(1 + int(rng.expovariate(1 / 40.0)) if rng.random() < 0.97 else rng.randint(200, 2500))
        a1 = w.street() + " " + w.street_type()
        r = rng.random()
        if r < 0.65:
            a2 = ""
        elif r < 0.82:
            a2 = rng.choice(("unit", "flat", "apt", "unit", "level")) + " " + str(rng.randint(1, 40))
        else:
            a2 = rng.choice(w.properties)
        return num, a1, a2, sub

    def email_for(self, given, surname, dob):
        rng = self.rng
        f = "".join(ch for ch in fold(given) if ch.isalnum())
        l = "".join(ch for ch in fold(surname) if ch.isalnum())
        yy = "%02d" % (dob[0] % 100) if dob else str(rng.randint(1, 99))
        r = rng.random()
        if not f or not l or r < 0.05:
            local = rng.choice(self.w.handles) + rng.choice(self.w.handles) + str(rng.randint(1, 999))
        elif r < 0.40:
            local = f + "." + l
        elif r < 0.55:
            local = f[0] + l + str(rng.randint(1, 99))
        elif r < 0.65:
            local = f + l
        elif r < 0.75:
            local = f + "_" + l + yy
        elif r < 0.80:
            local = f + "." + l[0]
        elif r < 0.85:
            local = l + "." + f
        else:
            local = f + yy
        domain = self.w.domain()
        email = local + "@" + domain
        n = 1
        while email in self.used_email:       # a real mailbox belongs to one owner (or one family)
            n += 1
            email = local + str(n) + "@" + domain
        self.used_email.add(email)
        return email

    def family_email(self, surname):
        rng = self.rng
        l = "".join(ch for ch in fold(surname) if ch.isalnum())
        local = rng.choice(("the" + l + "s", l + "family", "the." + l + "s", l + ".family", l + "s" + str(rng.randint(1, 99))))
        domain = self.w.domain()
        email, n = local + "@" + domain, 1
        while email in self.used_email:
            n += 1
            email = local + str(n) + "@" + domain
        self.used_email.add(email)
        return email

    def mobile(self):
        return "04" + "".join(str(self.rng.randrange(10)) for _ in range(8))

    def landline(self, state):
        return AREA_CODE[state] + str(self.rng.randint(3, 9)) + "".join(str(self.rng.randrange(10)) for _ in range(7))

    def person(self, gender, given, surname, script, addr, dob, email, phone):
        p = Person()
        p.gender, p.given, p.surname, p.script = gender, given, surname, script
        p.street_number, p.address_1, p.address_2, p.suburb = addr
        p.dob, p.ssn, p.email, p.phone = dob, self.ssn(), email, phone
        return p

    def single(self):
        rng = self.rng
        gender = "m" if rng.random() < 0.5 else "f"
        script = None
        if rng.random() < 0.004:
            script = "greek" if rng.random() < 0.5 else "cyrillic"
        given, surname = self.names(gender, script)
        addr = self.address()
        if self.reservoir and rng.random() < 0.004:    # a namesake: same name, same suburb, another person
            gender, given, surname, sub = rng.choice(self.reservoir)
            addr = addr[:3] + (sub,)
            self.namesakes += 1
        dob = self.maybe_dob(self.adult_age())
        email = self.email_for(given, surname, dob) if rng.random() < 0.75 else None
        r = rng.random()
        phone = None if r < 0.30 else (self.mobile() if r < 0.86 else self.landline(self.w.suburbs[addr[3]][2]))
        p = self.person(gender, given, surname, script, addr, dob, email, phone)
        if len(self.reservoir) < 20000:
            self.reservoir.append((gender, given, surname, addr[3]))
        else:
            self.reservoir[rng.randrange(20000)] = (gender, given, surname, addr[3])
        return [p]

    def household(self, size):
        rng = self.rng
        script = None
        if rng.random() < 0.004:
            script = "greek" if rng.random() < 0.5 else "cyrillic"
        g1 = "m" if rng.random() < 0.5 else "f"
        given1, surname = self.names(g1, script)
        addr = self.address()
        home = self.landline(self.w.suburbs[addr[3]][2]) if rng.random() < 0.65 else None
        couple = size > 2 or rng.random() < 0.65
        n_adults = 2 if couple and not (size > 2 and rng.random() < 0.2) else 1
        age1 = rng.randint(30, 72) if size > n_adults else self.adult_age()
        # members: (gender, given name, age, dob)
        members = [(g1, given1, age1, self.maybe_dob(age1))]
        if n_adults == 2:
            g2 = ("f" if g1 == "m" else "m") if rng.random() < 0.92 else g1
            age2 = max(19, age1 + rng.randint(-8, 8))
            members.append((g2, self.names(g2, script)[0], age2, self.maybe_dob(age2)))
        older = max(m[2] for m in members)
        father = next((m for m in members if m[0] == "m"), None)
        names_taken = {m[1] for m in members}
        prev = None
        for _ in range(size - n_adults):
            gender = "m" if rng.random() < 0.5 else "f"
            if prev and prev[3] and rng.random() < 0.08:       # twins: same dob, another name
                age, dob = prev[2], prev[3]
                self.twins += 1
            else:
                age = max(0, older - rng.randint(25, min(40, older)))   # parents 25-40 years older
                dob = self.maybe_dob(age)
            given = self.names(gender, script)[0]
            while given in names_taken:
                given = self.names(gender, script)[0]
            if gender == "m" and father and rng.random() < 0.05:   # "junior", named after his father
                given = father[1]
                self.juniors += 1
            names_taken.add(given)
            prev = (gender, given, age, dob)
            members.append(prev)
        # mailbox: a family one, or the first adult's, used by most members; others own or none
        shared_mail = None
        r = rng.random()
        if r < 0.35:
            shared_mail = self.family_email(surname)
        elif r < 0.75:
            shared_mail = self.email_for(given1, surname, members[0][3])
        people = []
        for i, (gender, given, age, dob) in enumerate(members):
            r = rng.random()
            if shared_mail and r < 0.8:
                email = shared_mail
            elif age >= 13 and r < 0.93:
                email = self.email_for(given, surname, dob)
            else:
                email = None
            r = rng.random()
            if home and r < 0.75:
                phone = home
            elif age >= 13 and r < 0.85:
                phone = self.mobile()
            else:
                phone = None
            people.append(self.person(gender, given, surname, script, addr, dob, email, phone))
        return people

    def maybe_dob(self, age):
        return self.dob_for_age(age) if self.rng.random() > 0.02 else None


# --------------------------------------------------------------------------------------------
# Records: formatting and corruption
# --------------------------------------------------------------------------------------------

def fmt_dob(dob, style):
    if dob is None:
        return ""
    y, m, d = dob
    if style == 0:
        return "%04d%02d%02d" % (y, m, d)
    if style == 1:
        return "%04d-%02d-%02d" % (y, m, d)
    return "%02d/%02d/%04d" % (d, m, y)


def fmt_phone(digits, style):
    if not digits:
        return ""
    if digits.startswith("04"):
        if style == 0:
            return digits[:4] + " " + digits[4:7] + " " + digits[7:]
        return digits
    if style == 0:
        return "(" + digits[:2] + ") " + digits[2:6] + " " + digits[6:]
    if style == 1:
        return digits[:2] + " " + digits[2:6] + " " + digits[6:]
    return digits


class Recorder:
    """Formats a person as one CSV row; duplicates get corrupted on the way.

    Email and phone are always generated (so a --no-contact file holds exactly the same people and
    corruptions as the full one, only without those two columns)."""

    def __init__(self, gen, contact):
        self.gen = gen
        self.rng = rng = gen.rng
        self.columns = COLUMNS if contact else COLUMNS[:-2]
        self.corruption = Weighted(CORRUPTIONS, rng)
        self.typo_field = Weighted(TYPO_FIELDS, rng)
        self.blank_field = Weighted(BLANK_FIELDS, rng)
        self.n_corrupt = Weighted([(1, 50), (2, 35), (3, 15)], rng)
        self.applied = Counter()

    def base(self, p):
        """The field values of a person, before formatting of dob and phone."""
        sub = self.gen.w.suburbs[p.suburb]
        return {"given_name": p.given, "surname": p.surname, "street_number": p.street_number,
                "address_1": p.address_1, "address_2": p.address_2, "suburb": sub[0], "postcode": sub[1],
                "state": sub[2], "dob": p.dob, "soc_sec_id": p.ssn or "", "email": p.email or "", "phone": p.phone or ""}

    def row(self, rec_id, p, dup):
        rng = self.rng
        f = self.base(p)
        dob_style = bisect((0.55, 0.80), rng.random())      # YYYYMMDD, YYYY-MM-DD, DD/MM/YYYY
        phone_style = 0 if rng.random() < 0.7 else (1 if rng.random() < 0.5 else 2)
        late = []
        if dup:
            wanted, done = self.n_corrupt(), 0
            for _ in range(20):
                if done == wanted:
                    break
                kind = self.corruption()
                if kind in LATE:
                    if (kind == "email_variant" and not f["email"]) or (kind == "phone_format" and not f["phone"]):
                        continue
                    late.append(kind)
                elif not self.structural(kind, f, p):
                    continue
                self.applied[kind] += 1
                done += 1
        f["date_of_birth"] = fmt_dob(f.pop("dob"), dob_style)
        digits = f["phone"]
        f["phone"] = fmt_phone(digits, phone_style)
        for kind in late:
            self.late(kind, f, digits)
        r = rng.random()
        null = "" if r < 0.93 else ("NULL" if r < 0.97 else "n/a")   # the "source system" style
        out = [rec_id]
        for c in self.columns[1:]:
            v = f[c]
            out.append(v if v else null)
        return out

    def structural(self, kind, f, p):
        rng = self.rng
        if kind == "nickname":
            nick = NICKNAMES.get(f["given_name"])
            if not nick:
                return False
            f["given_name"] = rng.choice(nick)
        elif kind == "accent":
            changed = False
            for c in ("given_name", "surname", "address_1", "suburb"):
                v = f[c]
                if v and not v.isascii():
                    f[c] = fold(v, rng)
                    changed = True
            return changed
        elif kind == "swap_names":
            if not f["given_name"] or not f["surname"]:
                return False
            f["given_name"], f["surname"] = f["surname"], f["given_name"]
        elif kind == "street_abbrev":
            words = f["address_1"].split(" ")
            short = STREET_ABBREV.get(words[-1])
            if not short or short == words[-1]:
                return False
            f["address_1"] = " ".join(words[:-1] + [short])
        elif kind == "dob_swap":
            if not f["dob"] or f["dob"][2] > 12 or f["dob"][2] == f["dob"][1]:
                return False
            y, m, d = f["dob"]
            f["dob"] = (y, d, m)
        elif kind == "moved":
            num, a1, a2, sub = self.gen.address()
            name, pc, state = self.gen.w.suburbs[sub]
            f.update(street_number=num, address_1=a1, address_2=a2, suburb=name, postcode=pc, state=state)
        return True

    def late(self, kind, f, digits):
        rng = self.rng
        if kind == "typo":
            c = self.typo_field()
            if f[c]:
                f[c] = typo(rng, f[c])
        elif kind == "blank":
            f[self.blank_field()] = ""
        elif kind == "upper":
            if rng.random() < 0.7:
                for c in ("given_name", "surname", "address_1", "address_2", "suburb", "state", "email"):
                    f[c] = f[c].upper()
            else:
                for c in ("given_name", "surname", "suburb"):
                    f[c] = f[c].title()
        elif kind == "email_variant":
            local, _, domain = f["email"].partition("@")
            r = rng.random()
            if r < 0.4:
                f["email"] = local + "+" + rng.choice(PLUS_TAGS) + "@" + domain
            elif r < 0.7:
                f["email"] = f["email"].upper()
            else:
                f["email"] = ".".join(w.capitalize() for w in local.split(".")) + "@" + domain.capitalize()
        elif kind == "phone_format":
            d = digits
            r = rng.random()
            if d.startswith("04"):
                f["phone"] = ("+61 " + d[1:4] + " " + d[4:7] + " " + d[7:]) if r < 0.5 else \
                    ("+61" + d[1:] if r < 0.75 else d[:4] + "-" + d[4:7] + "-" + d[7:])
            else:
                f["phone"] = ("+61 " + d[1] + " " + d[2:6] + " " + d[6:]) if r < 0.5 else \
                    ("+61" + d[1:] if r < 0.75 else d[2:6] + " " + d[6:])   # last: area code dropped


def typo(rng, s):
    n = len(s)
    op = rng.random()
    i = rng.randrange(n)
    ch = s[i]
    if op < 0.3 and n > 2:                       # delete
        return s[:i] + s[i + 1:]
    near = NEIGHBOURS.get(ch.lower())
    if near and ch.isdigit():                    # digits slip to digits (number row / keypad)
        near = "".join(c for c in near if c.isdigit())
    if op < 0.55:                                # insert (often a doubled or neighbouring key)
        ins = ch if (rng.random() < 0.3 or not near) else rng.choice(near)
        return s[:i] + ins + s[i:]
    if op < 0.8:                                 # substitute with a keyboard neighbour
        if near:
            return s[:i] + rng.choice(near) + s[i + 1:]
        return s[:i] + rng.choice("aeiou") + s[i + 1:]
    if n > 1:                                    # transpose
        i = min(i, n - 2)
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    return s + s


# --------------------------------------------------------------------------------------------
# Main: stream households to bucket files, then shuffle each bucket into the output
# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-contact", action="store_true", help="drop the email and phone columns")
    args = ap.parse_args()
    t0 = time.perf_counter()
    N = args.records
    gen = Generator(args.seed)
    rng = gen.rng
    rec = Recorder(gen, not args.no_contact)
    dup_count = Weighted([(0, 920), (1, 60), (2, 12), (3, 5), (4, 3)], rng)
    hh_size = Weighted([(2, 40), (3, 25), (4, 22), (5, 13)], rng)

    # entity numbers: an affine bijection of the generation order, so ids reveal no household
    a = rng.randrange(N // 3 + 1, N) if N > 3 else 1
    while math.gcd(a, N) != 1:
        a += 1
    b = rng.randrange(N)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    tmp = os.path.join(out_dir, "." + os.path.basename(args.out) + ".shuffle")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n_buckets = max(1, -(-N // 100000))
    files = [open(os.path.join(tmp, "%04d" % i), "w", newline="", encoding="utf-8") for i in range(n_buckets)]
    writers = [csv.writer(fh, lineterminator="\n") for fh in files]

    written = entities = true_pairs = households = in_households = 0
    cluster_sizes = Counter()
    name_place = Counter()           # (given, surname, suburb) over distinct people
    i_entity = 0
    while written < N:
        if rng.random() < 0.075:
            people = gen.household(hh_size())
            households += 1
            in_households += len(people)
        else:
            people = gen.single()
        for p in people:
            if written >= N:
                break
            ent = (a * i_entity + b) % N
            i_entity += 1
            entities += 1
            name_place[hash((p.given, p.surname, p.suburb))] += 1
            writers[rng.randrange(n_buckets)].writerow(rec.row("rec-%d-org" % ent, p, False))
            written += 1
            k = min(dup_count(), N - written)
            for d in range(k):
                writers[rng.randrange(n_buckets)].writerow(rec.row("rec-%d-dup-%d" % (ent, d), p, True))
            written += k
            cluster_sizes[k + 1] += 1
            true_pairs += (k + 1) * k // 2
    for fh in files:
        fh.close()
    t_gen = time.perf_counter() - t0

    with open(args.out, "w", newline="", encoding="utf-8") as out:
        out.write(",".join(COLUMNS if not args.no_contact else COLUMNS[:-2]) + "\n")
        for i in range(n_buckets):
            path = os.path.join(tmp, "%04d" % i)
            with open(path, encoding="utf-8") as fh:
                lines = fh.readlines()
            rng.shuffle(lines)
            out.writelines(lines)
            os.remove(path)
    os.rmdir(tmp)

    collide = sum(1 for v in name_place.values() if v > 1)
    summary = {
        "records": written, "entities": entities, "duplicates": written - entities,
        "duplicate_share": round((written - entities) / max(written, 1), 4),
        "true_pairs": true_pairs, "largest_true_cluster": max(cluster_sizes),
        "true_cluster_sizes": dict(sorted(cluster_sizes.items())),
        "households": households, "people_in_households": in_households,
        "household_share": round(in_households / max(entities, 1), 4),
        "name_suburb_collision_groups": collide,
        "people_in_name_suburb_collisions": sum(v for v in name_place.values() if v > 1),
        "injected_namesakes": gen.namesakes, "twins": gen.twins, "juniors": gen.juniors,
        "corruptions": dict(rec.applied.most_common()),
        "vocabulary": {"surnames": gen.w.n_surnames, "given_names": gen.w.n_given, "suburbs": len(gen.w.suburbs),
                       "top_surname_share": round(gen.w.surname.share_of_top(), 4)},
        "seconds": round(time.perf_counter() - t0, 1), "generate_seconds": round(t_gen, 1),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
