"""Prompt templates of the simulator (paper App. B.1), as chats ``[system, user]``.

=============================  ===========================================================
``ad_llm_chat(inst, style)``   the Ad-LLM prompt: role, task, candidate list (JSON: id, title,
                               bid), requirements 1-4, correct and incorrect insertion examples,
                               user profile, user question, "Your Answer:". ``style="paper"``
                               (default) keeps the paper's wording; ``style="compact"`` says the
                               same in few words (~1/2 the tokens) for small models, and lists
                               each candidate as the exact markup to copy (``@Title@[Ad-ID] bid
                               37``): a 135M model copies a line far more reliably than it pairs
                               a title with the id printed before it in a JSON row (48 of 73
                               markups of the first warm start had a candidate's title with
                               another candidate's id). ``style="compact_bid_first"``
                               writes ``bid 37 @Title@[Ad-ID]``: under causal attention the
                               title's tokens then see their own bid (an IRPO ablation; the
                               warm start was trained on ``compact``).
``plain_chat(inst)``           the same question for a plain assistant, no ads (reference
                               policy of MOSAIC, ad-free answer of the GSP/RAG baselines)
``integrate_chat(inst, ads)``  answer and integrate exactly the given ads in the markup
``user_llm_chat(inst, resp)``  the User-LLM click-feedback prompt with its JSON output example
``query_generation_chat(...)`` the User-LLM query-generation prompt
=============================  ===========================================================

Ad titles, queries, profiles and responses are data, never instructions: titles, queries and
profiles are JSON-encoded (quoted, newlines escaped, so they cannot start a ``# Section`` line; the
compact list writes titles as markup, which ``Ad`` validation keeps free of ``@``, ``[``, ``]`` and
newlines), the response is put in a code fence longer than any backtick run inside it, and chat-template
control sequences (``<|``) inside data are broken up (``< |``). Templates are assembled by
concatenation, so braces in data are inert. Every chat starts with an explicit system message
(some chat templates insert their own default system prompt when there is none).

The insertion examples use ads from ``EXAMPLE_ADS`` (not in the shipped catalog), skipping any
whose id or title is a candidate, so a model cannot copy a candidate from an example.
"""
from __future__ import annotations

import json
import re
from typing import Sequence

from .llm.base import Chat
from .parsing import render
from .types import Ad, AuctionInstance, UserProfile

STYLES = ("paper", "compact", "compact_bid_first")

EXAMPLE_ADS = (
    Ad("Ad-0417", "Walnut Phone Stand", "example"),
    Ad("Ad-0398", "Bamboo Lunch Box", "example"),
    Ad("Ad-0265", "Linen Picnic Blanket", "example"),
)

AD_LLM_ROLE = (
    "# Role\nYou are an AI assistant with advertising and marketing capabilities. You need to provide "
    "useful answers to user's question while also inserting ads when appropriate."
)
AD_LLM_TASK = (
    "# Task\nIn the process of answering a question, when the user's question is suitable for ad "
    "insertion, you can combine the provided JSON-format candidate ad list and the user profile to "
    "naturally insert ad content at an appropriate position, to maximize user experience and ad revenue."
)
AD_LLM_REQUIREMENTS = """# Requirements
1. You can choose not to insert an ad, or insert one or more ads. Note that ads must be inserted in the format "@Ad Title@[Ad ID]". The ad title and ad ID must strictly follow the candidate ad list. Severe penalties will be applied for incorrect insertion format or incorrect ad-related information.
2. When an inserted ad is clicked by the user, you will receive revenue proportional to the ad's bid. However, the more ads you insert, the lower the user experience. Therefore, you need to balance these two aspects to achieve maximum social welfare. Obviously, if the user's question is not suitable for ad insertion or there are no suitable candidate ads, do not insert any ad is the best choice.
3. When inserting an ad, the ad title part cannot be modified. However, you can adjust the context around the ad insertion position in your answer to make the ad content more natural and increase the probability of user clicks.
4. Your role is an AI assistant, so the most important thing is to answer the user's question and ensure a good user experience. Then, at the right time and in the right way, insert a suitable ad. Note that even when inserting ads, you must maintain the quality of the overall answer. Do not include any thought process related to the ad insertion process in the final answer."""

USER_LLM_ROLE = (
    "# Role\nYou are a real user, using an AI assistant to acquire information, seek product "
    "recommendations, or make shopping decisions."
)
USER_LLM_REQUIREMENTS = """# Requirements
1. Based primarily on your question, and also considering your identity and personal interests, realistically reflect on your click behavior after seeing ads inserted as "@Ad Title@[Ad ID]". Note that you can choose not to click any ad, or click one or more ads.
2. The decision to click can consider these aspects:
(1) Relevance: The direct or indirect relevance to your question, and how well it matches your identity and personal interests.
(2) Nativeness: How well the ad integrates with the answer's context. You are more likely to click ads with better nativity. If it's a hard ad that disrupts the native feel of the answer or is an incoherent insertion, you will choose not to click.
(3) Competitiveness: Whether there are similar or competing ads in the answer. If so, your attention will be divided; please click only one ad or none at all.
3. Please simulate the user's experience after seeing the AI assistant's answer. If the answer (1) is flooded with too many ads or (2) contains a lot of irrelevant text related to ad insertion, this will severely damage the user experience. In this case, do not click any ads.
4. Please provide click feedback for ALL ads inserted in the format "@Ad Title@[Ad ID]" (Ad Title is text, Ad ID is like Ad-XXXX). Do not miss any or duplicate.
5. Output the result in a strict JSON list format, with no extra information. The fields are:
- ad_id: Ad ID (string)
- clicked: Whether clicked (boolean: true / false)
- reason: Reason (string, concise and clear).
If there are no ads in the answer, return an empty list "[]"."""
USER_LLM_EXAMPLE = json.dumps(
    [
        {"ad_id": "Ad-XXXX", "clicked": True, "reason": "The ad is relevant to my question and fits naturally into the answer."},
        {"ad_id": "Ad-YYYY", "clicked": False, "reason": "The ad is unrelated to my question and is appended at the end."},
    ]
)

QUERY_GEN_REQUIREMENTS = """# Requirements
1. The questions should be distinct, addressing your different potential needs, while having direct or indirect connections to your identity information and personal interests.
2. The questions should not involve sensitive, pornographic, or unsafe content.
3. Write each question on its own line as a numbered list (1., 2., ...), with nothing else."""
DEFAULT_QUERY_DEMONSTRATION = """1. Are there any beginner-friendly homemade coffee recipes that pair well with post-yoga relaxation?
2. Which LEGO sets are good for an adult who wants a relaxing weekend project?
3. Can you suggest a few novels to read on my commute that take less than a week each?"""

_CONTROL = re.compile(r"<\|")


def _safe(text: str) -> str:
    """Break chat-template control sequences inside data."""
    return _CONTROL.sub("< |", text)


def _quote(text: str) -> str:
    """A data string as a JSON string literal: quoted, newlines and quotes escaped."""
    return _safe(json.dumps(text, ensure_ascii=False))


def _fence(text: str) -> str:
    """``text`` inside a backtick fence longer than any backtick run in it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{_safe(text)}\n{fence}"


def _bid(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 2)


def _ad_rows(inst: AuctionInstance, keys: tuple[str, str, str]) -> str:
    rows = [{keys[0]: a.ad_id, keys[1]: a.title, keys[2]: _bid(b)} for a, b in zip(inst.ads, inst.bids)]
    return "\n".join(_safe(json.dumps(r, ensure_ascii=False)) for r in rows)


def _system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def example_ad(ads: Sequence[Ad]) -> Ad:
    """An illustration ad whose id and title are not among ``ads``."""
    ids, titles = {a.ad_id for a in ads}, {a.title.strip().lower() for a in ads}
    for ad in EXAMPLE_ADS:
        if ad.ad_id not in ids and ad.title.lower() not in titles:
            return ad
    n = 90000000
    while f"Ad-{n}" in ids:
        n += 1
    return Ad(f"Ad-{n}", "Example Product Placeholder", "example")


def _examples_paper(ex: Ad) -> str:
    good = (
        "Use a phone stand at eye level when following an online recipe, so your hands stay free. "
        f"The {render(ex)} holds the phone steady at a comfortable angle while you cook."
    )
    short = " ".join(ex.title.split()[-2:])
    bad = "\n".join([
        f"- @{short}@[{ex.ad_id}] (the ad title was modified)",
        f"- @{ex.title}@ (the ad ID is missing)",
        f"- [{ex.ad_id}] {ex.title} (the @ markers are missing)",
        f"- @{ex.title}@[Ad-99999999] (the ad ID is not in the candidate ad list)",
        f"- I will insert {render(ex)} here because its bid is high. (thought process about ad insertion)",
    ])
    note = "(The example ad below is an illustration only; it is not a candidate ad.)"
    return f"# Ad Insertion Examples\n{note}\n## Correct Examples\n{good}\n## Incorrect Examples\n{bad}"


def ad_llm_chat(inst: AuctionInstance, style: str = "paper") -> Chat:
    """The Ad-LLM prompt of App. B for ``inst`` (see module docstring for ``style``)."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; use one of {STYLES}")
    ex = example_ad(inst.ads)
    if style in ("compact", "compact_bid_first"):
        bid_first = style == "compact_bid_first"
        body = "\n".join([
            "Answer the question. You may add relevant ads as @Title@[ID], copied exactly from the list. "
            "Clicks pay the bid; too many ads annoy the user.",
            "Ads (bid, then markup to copy):" if bid_first else "Ads (markup to copy, then bid):",
            "\n".join(f"bid {_bid(b)} {_safe(render(a))}" if bid_first else f"{_safe(render(a))} bid {_bid(b)}"
                      for a, b in zip(inst.ads, inst.bids)),
            f"Right: the {render(ex)} holds it. Wrong: @{ex.title}@ or @{ex.title.split()[-1]}@[{ex.ad_id}]"
            " (example ad, not in the list).",
            f"User: {_quote(inst.user.describe())}",
            f"Question: {_quote(inst.query)}",
            "Answer:",
        ])
        return [_system("You are a helpful assistant that may insert ads."), _user(body)]
    body = "\n".join([
        AD_LLM_TASK,
        "# Candidate Ad List",
        _ad_rows(inst, ("Ad ID", "Ad Title", "Ad Bid")),
        AD_LLM_REQUIREMENTS,
        _examples_paper(ex),
        "# User Profile",
        _quote(inst.user.describe()),
        "# User Question",
        _quote(inst.query),
        "Your Answer:",
    ])
    return [_system(AD_LLM_ROLE), _user(body)]


def template_fingerprint(style: str = "paper") -> str:
    """Short hash of the Ad-LLM and plain prompts of a fixed instance: it changes whenever a
    template does (cached results keyed on it are not reused across prompt changes)."""
    import hashlib

    inst = AuctionInstance("Which gift suits a runner?", UserProfile("u-0", "A runner"),
                           (Ad("Ad-1", "Trail Shoes", "shoes"), Ad("Ad-2", "Desk Lamp", "lamps")), (10.0, 20.5))
    text = json.dumps([ad_llm_chat(inst, style), plain_chat(inst)], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plain_chat(inst: AuctionInstance) -> Chat:
    """The same question for a plain assistant, without any ads."""
    body = "\n".join([
        "# User Profile", _quote(inst.user.describe()),
        "# User Question", _quote(inst.query),
        "Your Answer:",
    ])
    system = ("You are a helpful AI assistant. Answer the user's question accurately and concisely, "
              "taking the user profile into account. Do not mention products or ads.")
    return [_system(system), _user(body)]


def integrate_chat(inst: AuctionInstance, ads_to_insert: Sequence[Ad | str]) -> Chat:
    """Answer and integrate exactly ``ads_to_insert`` (ads or ids of ``inst``'s candidates), each
    once, in the ``@Ad Title@[Ad ID]`` markup. With no ads this is ``plain_chat``."""
    ads = [inst.ad(a) if isinstance(a, str) else a for a in ads_to_insert]
    if not ads:
        return plain_chat(inst)
    ex = example_ad(list(inst.ads) + ads)
    rows = "\n".join(_safe(json.dumps({"Ad ID": a.ad_id, "Ad Title": a.title}, ensure_ascii=False)) for a in ads)
    task = (
        "# Task\nAnswer the user's question and naturally integrate each ad in the list below exactly once, "
        "at the position where it fits best. Insert each ad in the format \"@Ad Title@[Ad ID]\", copying the "
        "ad title and ad ID exactly. Do not insert any other ad, and do not include any thought process "
        "about ad insertion in the answer."
    )
    body = "\n".join([
        task, "# Ads to Insert", rows, _examples_paper(ex),
        "# User Profile", _quote(inst.user.describe()),
        "# User Question", _quote(inst.query),
        "Your Answer:",
    ])
    return [_system(AD_LLM_ROLE), _user(body)]


def user_llm_chat(inst: AuctionInstance, response: str) -> Chat:
    """The User-LLM click-feedback prompt of App. B for ``response`` to ``inst``."""
    body = "\n".join([
        "Below is your personal information:",
        "## Basic Information:", _quote(inst.user.info),
        "## Personal Interests:", _safe(json.dumps(list(inst.user.interests), ensure_ascii=False)),
        "# Task",
        'Read the answer from the AI assistant to your question. The answer might contain ads inserted in the '
        'format "@Ad Title@[Ad ID]". If there are ads, please provide your click behavior as a real user.',
        USER_LLM_REQUIREMENTS,
        "# Output Example", USER_LLM_EXAMPLE,
        "# Your Question:", _quote(inst.query),
        "# AI Assistant's Answer", _fence(response),
        "Your click feedback is:",
    ])
    return [_system(USER_LLM_ROLE), _user(body)]


def query_generation_chat(profile: UserProfile, num_queries: int,
                          demonstration: str = DEFAULT_QUERY_DEMONSTRATION) -> Chat:
    """The User-LLM query-generation prompt of App. B for ``profile``."""
    if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries < 1:
        raise ValueError(f"num_queries must be a positive integer, got {num_queries!r}")
    role = (
        "# Role\nYou are a user of an AI assistant product, using it to acquire information, seek product "
        "recommendations, or make shopping decisions."
    )
    body = "\n".join([
        "Below is your personal information:",
        "## Basic Information:", _quote(profile.info),
        "## Personal Interests:", _safe(json.dumps(list(profile.interests), ensure_ascii=False)),
        "# Task",
        f"Based on your basic information and personal interests, ask the AI assistant {num_queries} questions.",
        QUERY_GEN_REQUIREMENTS,
        "# Output Examples", _fence(demonstration),
        "Please ask your questions:",
    ])
    return [_system(role), _user(body)]
