"""Fixed, LLM-free ad responses with valid markup by construction: the candidate set of the
properties benchmark's reference mechanism and the responses of the synthetic historical click log
that pre-trains the pCTR reward model (psi_0 of Algorithm 1).

The answer text is deliberately generic, so what varies between responses is which ad is shown and
where: inside the answer in its own sentence, as the answer's first words, or appended at its end
(the placements the semantic user tells apart).
"""
from __future__ import annotations

from .parsing import render
from .types import Ad, AuctionInstance

INTRO = "Good question. Here is what I would look at first. Think about your budget and how often you will use it."
OUTRO = "Compare a few options before you decide."
NO_AD = f"{INTRO} Start with something simple that fits what you describe. {OUTRO}"


def single_ad_response(inst: AuctionInstance, ad: Ad) -> str:
    """A short answer recommending ``ad`` in its own sentence amid plain sentences (not appended,
    not flooded under the semantic user's rules)."""
    return f"{INTRO} For this, I would suggest {render(ad)} because it fits what you describe. {OUTRO}"


def template_candidates(inst: AuctionInstance) -> list[str]:
    """An ad-free answer, the answer recommending each single ad, and each pair of neighbouring ads."""
    out = [NO_AD]
    out += [single_ad_response(inst, a) for a in inst.ads]
    out += [f"{INTRO} For this, I would suggest {render(a)} or {render(b)} because they fit what you describe. "
            f"{OUTRO}" for a, b in zip(inst.ads, inst.ads[1:])]
    return out


def placement_variants(inst: AuctionInstance) -> list[str]:
    """The ad-free answer and, for each candidate ad, the answer with that ad inside it, as its
    first words, and appended at its end (``1 + 3 * len(inst.ads)`` responses)."""
    out = [NO_AD]
    for ad in inst.ads:
        out += [single_ad_response(inst, ad), f"{render(ad)} {NO_AD}", f"{NO_AD} {render(ad)}"]
    return out
