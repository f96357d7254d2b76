"""Deterministic synthetic users and queries (the paper's 3k profiles x 5 queries, Sec. 5.2.1).

The paper writes profiles and queries with an LLM; offline, we write them from a grammar:

* **Profiles** (``generate_profiles``): age band, gender, occupation (consistent with age), city
  (with its tier) and life stage make up ``info``; 2-4 interests are drawn from the 50 catalog
  categories (``topics.json``; parents lean to baby care and early education, retirees to herbal
  wellness and gardening...). ``interests`` holds the human-readable interest phrases.
* **Queries** (``generate_queries``): 5 per profile, each written around one of the profile's
  interests (``Query.topics`` = its catalog category, plus a second one for cross-interest
  questions). Every profile's 5 queries use 5 different intents out of 10 (how-to,
  recommendation, comparison, planning, troubleshooting, gift ideas, combining two interests,
  suitability and precautions, shopping decisions, seasonal advice), each with several templates
  whose slots are filled from the category's vocabulary (things, activities, problems) and from the
  profile (occupation, city, life stage, age, budget, season, gift recipient...).
* **Split** (``split_users``): by profile, 2,400 train / 600 test users (12k / 3k queries).

Everything is a pure function of ``seed`` (default ``DEFAULT_SEED``); the uniform draws come from
one ``numpy.random.default_rng(seed)`` stream drawn in bulk, so generation takes well under a
second. ``query_diversity`` measures how distinct the queries are.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np

from ..types import Query, UserProfile

DEFAULT_SEED = 2512
N_PROFILES = 3000
QUERIES_PER_PROFILE = 5
TEST_PROFILES = 600


@lru_cache(maxsize=1)
def topics() -> dict[str, dict]:
    """Category -> {interest, things, activities, problems} (the shipped ``topics.json``)."""
    text = resources.files(__package__).joinpath("topics.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def interest_to_category() -> dict[str, str]:
    """Human-readable interest phrase -> catalog category."""
    return {v["interest"]: k for k, v in topics().items()}


class _Draws:
    """Uniform choices from a bulk-drawn numpy stream (fast and reproducible)."""

    def __init__(self, seed: int, size: int = 1 << 16) -> None:
        self._rng = np.random.default_rng(seed)
        self._size = size
        self._buf = self._rng.random(size).tolist()
        self._i = 0

    def uniform(self) -> float:
        if self._i == self._size:
            self._buf, self._i = self._rng.random(self._size).tolist(), 0
        u = self._buf[self._i]
        self._i += 1
        return u

    def pick(self, seq: Sequence):
        return seq[int(self.uniform() * len(seq))]

    def weighted(self, seq: Sequence, weights: Sequence[float]):
        u, acc = self.uniform() * sum(weights), 0.0
        for item, w in zip(seq, weights):
            acc += w
            if u < acc:
                return item
        return seq[-1]

    def sample(self, seq: Sequence, k: int) -> list:
        pool, out = list(seq), []
        for _ in range(min(k, len(pool))):
            out.append(pool.pop(int(self.uniform() * len(pool))))
        return out


# ----------------------------------------------------------------------------- profiles
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_WEIGHTS = (0.18, 0.27, 0.22, 0.15, 0.11, 0.07)
WORKING = (
    "software engineer", "nurse", "primary school teacher", "accountant", "sales manager",
    "civil servant", "doctor", "graphic designer", "delivery rider", "factory technician",
    "small business owner", "lawyer", "marketing specialist", "university lecturer", "chef",
    "photographer", "architect", "bank clerk", "HR specialist", "product manager", "truck driver",
    "fruit farmer", "lab researcher", "journalist", "fitness coach", "pharmacist",
    "e-commerce operator", "customer service representative", "electrician", "freelance translator",
)
OCCUPATIONS = {
    "18-24": ("university student", "graduate student", "vocational school student") + WORKING[:20],
    "25-34": WORKING,
    "35-44": WORKING,
    "45-54": WORKING,
    "55-64": WORKING[:20] + ("retired teacher", "retired engineer", "retired factory worker", "retired civil servant"),
    "65+": ("retired teacher", "retired engineer", "retired factory worker", "retired doctor", "retired civil servant", "retired accountant"),
}
CITIES = {
    "first-tier city": ("Shanghai", "Beijing", "Shenzhen", "Guangzhou"),
    "new first-tier city": ("Chengdu", "Hangzhou", "Wuhan", "Nanjing", "Xi'an", "Chongqing", "Suzhou",
                            "Changsha", "Tianjin", "Zhengzhou", "Qingdao"),
    "second-tier city": ("Xiamen", "Kunming", "Harbin", "Dalian", "Guilin", "Lanzhou", "Nanning",
                         "Taiyuan", "Shaoxing", "Yangzhou"),
    "small town": ("a county town in Hunan", "a small town in Zhejiang", "a small town in Sichuan",
                   "a county town in Shandong", "a small town in Guangxi", "a county town in Henan"),
}
CITY_WEIGHTS = (0.3, 0.35, 0.22, 0.13)
LIFE_STAGES = {
    "18-24": ("single", "in a relationship", "living with roommates", "just started their first job"),
    "25-34": ("single", "in a relationship", "newly married", "expecting a first baby", "parent of a baby",
              "parent of a toddler"),
    "35-44": ("single", "married without children", "parent of a toddler", "parent of a school-age child",
              "parent of a teenager"),
    "45-54": ("parent of a teenager", "parent of a university student", "empty nester", "divorced, living alone"),
    "55-64": ("empty nester", "grandparent", "caring for elderly parents", "recently retired"),
    "65+": ("retired, living with their spouse", "grandparent who helps with the grandchildren", "living alone"),
}
# Interest affinities of life stages and ages (multiplicative boosts; everything else weight 1).
AFFINITY = {
    "baby": {"baby care": 8, "early education": 3, "sleep": 2, "home cleaning": 2},
    "toddler": {"early education": 6, "baby care": 3, "building toys": 3, "home cleaning": 2},
    "child": {"early education": 4, "building toys": 4, "board games": 2, "sneakers": 2},
    "teen": {"gaming": 2, "computers": 2, "badminton": 2},
    "young": {"gaming": 2, "anime figures": 3, "makeup": 2, "sneakers": 2, "smartphones": 2},
    "older": {"herbal wellness": 5, "tea": 3, "gardening": 3, "nutrition": 3, "fishing": 2, "board games": 2},
}


def _affinity_keys(age: str, stage: str) -> list[str]:
    keys = []
    if "baby" in stage:
        keys.append("baby")
    if "toddler" in stage:
        keys.append("toddler")
    if "school-age" in stage or "grand" in stage:
        keys.append("child")
    if "teenager" in stage:
        keys.append("teen")
    if age in ("18-24", "25-34"):
        keys.append("young")
    if age in ("55-64", "65+"):
        keys.append("older")
    return keys


def generate_profiles(n: int = N_PROFILES, seed: int = DEFAULT_SEED) -> list[UserProfile]:
    """``n`` profiles ``U-0001``... with basic info and 2-4 interests (see module docstring)."""
    d = _Draws(seed)
    cats = list(topics())
    profiles = []
    for k in range(n):
        age = d.weighted(AGE_BANDS, AGE_WEIGHTS)
        gender = d.pick(("male", "female"))
        occupation = d.pick(OCCUPATIONS[age])
        tier = d.weighted(tuple(CITIES), CITY_WEIGHTS)
        city = d.pick(CITIES[tier])
        stage = d.pick(LIFE_STAGES[age])
        if "student" in occupation and stage == "just started their first job":
            stage = "single"
        weights = [1.0] * len(cats)
        for key in _affinity_keys(age, stage):
            for cat, boost in AFFINITY[key].items():
                weights[cats.index(cat)] *= boost
        chosen: list[str] = []
        for _ in range(d.pick((2, 3, 3, 4))):
            idx = [i for i in range(len(cats)) if cats[i] not in chosen]
            chosen.append(cats[d.weighted(idx, [weights[i] for i in idx])])
        where = f"in {city} ({tier})" if tier != "small town" else f"in {city}"
        info = f"A {gender} {occupation}, aged {age}, living {where}; {stage}."
        interests = tuple(topics()[c]["interest"] for c in chosen)
        profiles.append(UserProfile(f"U-{k + 1:04d}", info, interests))
    return profiles


# ----------------------------------------------------------------------------- queries
_INFO = re.compile(r"^A (male|female) (.+?), aged (\S+), living in (.+?)(?: \((.+?)\))?; (.+)\.$")

TIMES = ("with only 20 minutes a day", "on weekday evenings", "before work", "on weekends",
         "during my lunch break", "with a very irregular schedule", "in half an hour a day",
         "three times a week")
SEASONS = ("this autumn", "for the coming winter", "during the rainy season", "in the summer heat",
           "before Chinese New Year", "this spring", "over the National Day holiday",
           "during the plum-rain season")
BUDGETS = ("under 200 yuan", "under 300 yuan", "under 500 yuan", "for around 800 yuan",
           "under 1,000 yuan", "for about 2,000 yuan", "on a tight budget", "without overspending",
           "if money is not the main concern", "that offers good value")
OCCASIONS = ("birthday", "Mid-Autumn Festival", "Chinese New Year", "Qixi Festival", "anniversary",
             "Teachers' Day", "Mother's Day", "Father's Day", "graduation", "housewarming")
SALES = ("the Double 11 sale", "the 618 shopping festival", "the Chinese New Year discounts",
         "the Double 12 sale")
PERIODS = ("four-week", "two-week", "three-month", "six-week", "monthly", "one-week")
RECIPIENTS = {
    "young": ("best friend", "roommate", "girlfriend", "boyfriend", "younger brother", "older sister",
              "mentor", "colleague"),
    "mid": ("wife", "husband", "mother", "father", "colleague", "boss", "best friend", "in-laws",
            "sister", "brother"),
    "parent": ("wife", "husband", "son", "daughter", "mother", "father", "child's teacher", "in-laws"),
    "older": ("wife", "husband", "grandson", "granddaughter", "daughter", "son", "old classmate",
              "neighbour"),
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "howto": (
        "How can I {act} {ctx}?",
        "I'm {a_occ}. What's the easiest way to {act} {time}?",
        "What are the first steps to {act} for a complete beginner {ctx}?",
        "Could you give me a step-by-step guide to {act} {time}, {ctx}?",
        "Any practical tips to {act} for {persona}?",
    ),
    "recommend": (
        "Can you recommend a good {thing} {budget} for {persona}?",
        "Which {thing} would you suggest for {persona} who wants to {act}?",
        "What should I look for when buying a {thing} {ctx}?",
        "I want to {act} {season}; which {thing} is worth buying {budget}?",
        "Which brands of {thing} are reliable {budget}, {ctx}?",
    ),
    "compare": (
        "Is a {thing} really better than a {thing2} for {persona} who wants to {act}?",
        "{Thing} or {thing2}: which should I buy first {budget}, {ctx}?",
        "How different are budget and premium {thing} options, and is the upgrade worth it for {persona}?",
        "For {persona}, does a {thing} or a {thing2} make more sense to {act}?",
    ),
    "plan": (
        "Help me make a {period} plan to {act} alongside my job as {a_occ}.",
        "Can you put together a weekend schedule {city_phrase} that mixes {interest} and {interest2} {season}?",
        "I want to {act} {season}. How should I plan it {ctx}?",
        "Please draft a {period} routine to {act} {time}, {ctx}.",
    ),
    "troubleshoot": (
        "{Problem}, and I'm {persona}. How can I fix it?",
        "{Problem}. Would a better {thing} help, or is it my routine {ctx}?",
        "Lately {problem}. Any practical fixes that work {ctx}?",
        "Why is it that {problem}, and what should I change {ctx}?",
    ),
    "gift": (
        "What's a thoughtful {occasion} gift for my {recipient} who loves {interest}, {budget}?",
        "My {recipient} is into {interest}. Would a {thing} make a good {occasion} present?",
        "For the next {occasion}, what {interest} gift would my {recipient} appreciate {budget}?",
        "I live {city_phrase} and want to send my {recipient} something for {interest} this {occasion}. Ideas?",
    ),
    "combine": (
        "Are there beginner-friendly ways to {act} that pair well with my love of {interest2}?",
        "How can I combine {interest} and {interest2} {time}, {ctx}?",
        "I enjoy {interest2}; could that help me {act} too, as {persona}?",
        "What's a fun weekend idea {city_phrase} that mixes {interest} with {interest2}?",
    ),
    "suitability": (
        "Is it suitable for {persona} to {act}, and what precautions should I take?",
        "What mistakes do beginners make when they {act}, especially {ctx}?",
        "I'm {age_phrase} and work as {a_occ}. Is it too late to {act}?",
        "How do I {act} safely {ctx}?",
    ),
    "shopping": (
        "I have about {money} yuan to spend on {interest}. How should I split it between a {thing} and a {thing2}?",
        "Should {persona} buy a {thing} now or wait for {sale}?",
        "Is an expensive {thing} worth it, or will a cheaper one do to {act} {ctx}?",
        "Which is the smarter purchase {ctx}: a {thing} or a {thing2}?",
    ),
    "seasonal": (
        "What should I know about trying to {act} {season}, {ctx}?",
        "How do I keep up with {interest} {season} when I'm {persona}?",
        "Does the weather {city_phrase} {season} change how I should {act}?",
        "What gear do I need for {interest} {season} as {persona}, {budget}?",
    ),
}
INTENTS = tuple(TEMPLATES)
_SLOT = re.compile(r"\{(\w+)\}")
_A_AN = re.compile(r"(?<![\w'])a (?=[aeioAEIO]|u(?!ni|s))")


def _person(info: str) -> dict[str, str]:
    m = _INFO.match(info)
    if not m:  # a user's own profile: fall back to neutral slot fillers
        return dict(gender="", occ="working adult", age="25-34", city="my city", tier="", stage="")
    gender, occ, age, city, tier, stage = m.groups()
    return dict(gender=gender, occ=occ, age=age, city=city, tier=tier or "", stage=stage)


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _slot_values(p: dict[str, str], d: _Draws) -> dict[str, list[str]]:
    occ, age, stage = p["occ"], p["age"], p["stage"]
    city = p["city"]
    city_phrase = city.replace("a ", "in a ", 1) if city.startswith("a ") else f"in {city}"
    ctx = [f"as {_article(occ)}", f"living {city_phrase}", f"while working as {_article(occ)}"]
    persona = [_article(occ), f"someone aged {age}", f"a busy {occ}"]
    stage_ctx = {
        "parent of a baby": ("with a baby at home", "a new parent"),
        "expecting a first baby": ("while expecting our first baby", "a parent-to-be"),
        "parent of a toddler": ("with a toddler at home", "a parent of a toddler"),
        "parent of a school-age child": ("with a primary-school kid at home", "a parent of a school kid"),
        "parent of a teenager": ("with a teenager at home", "a parent of a teenager"),
        "parent of a university student": ("now that my child is at university", "a parent with a grown child"),
        "empty nester": ("now that the kids have moved out", "an empty nester"),
        "grandparent": ("while looking after my grandchildren", "a grandparent"),
        "grandparent who helps with the grandchildren": ("while helping with my grandchildren", "a hands-on grandparent"),
        "recently retired": ("now that I've just retired", "a recent retiree"),
        "retired, living with their spouse": ("now that my spouse and I are retired", "a retiree"),
        "living alone": ("living on my own", "someone who lives alone"),
        "divorced, living alone": ("living on my own", "someone who lives alone"),
        "newly married": ("as a newlywed", "a newlywed"),
        "living with roommates": ("sharing a flat with roommates", "someone with roommates"),
        "caring for elderly parents": ("while caring for my elderly parents", "someone caring for elderly parents"),
        "married without children": ("with my spouse, no kids yet", "a married person without kids"),
        "just started their first job": ("in my first job", "a new graduate"),
        "in a relationship": ("with my partner", "someone in a relationship"),
        "single": ("as a single person", "a single professional"),
    }.get(stage)
    if stage_ctx:
        ctx.append(stage_ctx[0])
        persona.append(stage_ctx[1])
    if "student" in occ:
        ctx.append("on a student budget")
    if p["tier"] == "first-tier city":
        ctx.append(f"in a small apartment {city_phrase}")
    if p["tier"] == "" and city.startswith("a "):
        ctx.append("in a small town with few shops")
    if age in ("18-24", "25-34"):
        group = "young"
    elif age in ("55-64", "65+"):
        group = "older"
    elif "parent" in stage:
        group = "parent"
    else:
        group = "mid"
    age_phrase = {"18-24": "in my early twenties", "25-34": "around thirty", "35-44": "around forty",
                  "45-54": "in my late forties", "55-64": "nearly sixty", "65+": "over sixty-five"}[age]
    return dict(ctx=ctx, persona=persona, recipient=list(RECIPIENTS[group]), city_phrase=[city_phrase],
                a_occ=[_article(occ)], age_phrase=[age_phrase])


def _fill(template: str, slots: dict[str, list[str]], d: _Draws) -> str:
    chosen: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        name = m.group(1)
        key = name.lower()
        if key not in chosen:
            chosen[key] = d.pick(slots[key])
        value = chosen[key]
        return value[:1].upper() + value[1:] if name[:1].isupper() else value

    text = _A_AN.sub("an ", _SLOT.sub(sub, template))
    return re.sub(r"\s+([,?.])", r"\1", re.sub(r" {2,}", " ", text)).strip()


def queries_for_profile(profile: UserProfile, d: _Draws, n: int = QUERIES_PER_PROFILE,
                        prefix: str = "", split: str = "train") -> list[Query]:
    """``n`` distinct queries for one profile (different intents, interests in turn)."""
    to_cat, voc_all = interest_to_category(), topics()
    cats = [to_cat[i] for i in profile.interests if i in to_cat] or [d.pick(list(voc_all))]
    p = _person(profile.info)
    base = _slot_values(p, d)
    intents = d.sample(INTENTS, n) if n <= len(INTENTS) else [d.pick(INTENTS) for _ in range(n)]
    order = d.sample(cats, len(cats))
    out: list[Query] = []
    texts: set[str] = set()
    for j, intent in enumerate(intents):
        cat = order[j % len(order)]
        others = [c for c in cats if c != cat]
        for _attempt in range(20):
            voc = voc_all[cat]
            template = d.pick(TEMPLATES[intent])
            cat2 = d.pick(others) if others else d.pick([c for c in voc_all if c != cat])
            things = d.sample(voc["things"], 2)
            slots = dict(base, act=voc["activities"], thing=[things[0]], thing2=[things[1]],
                         problem=voc["problems"], interest=[voc["interest"]],
                         interest2=[voc_all[cat2]["interest"]], time=TIMES, season=SEASONS,
                         budget=BUDGETS, occasion=OCCASIONS, sale=SALES, period=PERIODS,
                         money=["300", "500", "800", "1,000", "1,500", "2,000", "3,000", "5,000"])
            text = _fill(template, slots, d)
            if text not in texts:
                break
        texts.add(text)
        topics_ = (cat, cat2) if "{interest2}" in template else (cat,)
        out.append(Query(f"{prefix}{profile.user_id}-Q{j + 1}", profile.user_id, text, split, topics_))
    return out


def split_users(user_ids: Sequence[str], n_test: int = TEST_PROFILES, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """user_id -> ``train``/``test``: a seeded permutation, the first ``n_test`` users are test."""
    perm = np.random.default_rng(seed + 1).permutation(len(user_ids))
    test = {user_ids[i] for i in perm[:n_test]}
    return {u: ("test" if u in test else "train") for u in user_ids}


def generate_queries(profiles: Sequence[UserProfile], n_per_profile: int = QUERIES_PER_PROFILE,
                     n_test_profiles: int = TEST_PROFILES, seed: int = DEFAULT_SEED) -> list[Query]:
    """Queries for ``profiles`` (ids ``<user_id>-Q<k>``), split by profile."""
    d = _Draws(seed + 2)
    split = split_users([p.user_id for p in profiles], n_test_profiles, seed)
    out = []
    for prof in profiles:
        out += queries_for_profile(prof, d, n_per_profile, split=split[prof.user_id])
    return out


def query_diversity(texts: Sequence[str]) -> dict[str, float]:
    """``distinct_ratio``: distinct texts / all; ``near_duplicate_share``: share of queries whose
    normalised token set (lower-cased words, stop words dropped) is shared with another query."""
    stop = {"a", "an", "the", "i", "my", "me", "to", "for", "of", "and", "or", "in", "on", "is",
            "it", "do", "what", "how", "can", "you", "with", "that", "be", "are", "which", "should"}
    keys = [frozenset(w for w in re.findall(r"[a-z0-9']+", t.lower()) if w not in stop) for t in texts]
    counts: dict[frozenset, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    n = max(len(texts), 1)
    return {
        "n": float(len(texts)),
        "distinct_ratio": len(set(texts)) / n,
        "near_duplicate_share": sum(1 for k in keys if counts[k] > 1) / n,
        "distinct_token_sets_ratio": len(counts) / n,
    }
