"""llm-auction-env: Gymnasium environments for LLM-native ad auctions (arXiv 2512.10551).

Importing the package registers ``LLMAuction-v0`` (the mechanism writes the response) and
``LLMAuctionBidding-v0`` (one advertiser bids against an allocation oracle).
"""
from gymnasium.envs.registration import register, registry

from .reward import RewardConfig
from .types import Ad, AuctionInstance, ClickFeedback, Outcome, Placement, Query, UserProfile

__version__ = "0.1.0"

if "LLMAuction-v0" not in registry:
    register(
        id="LLMAuction-v0",
        entry_point="llm_auction_env.envs.auction:LLMAuctionEnv",
        vector_entry_point="llm_auction_env.envs.auction_vector:LLMAuctionVectorEnv",
    )
if "LLMAuctionBidding-v0" not in registry:
    register(id="LLMAuctionBidding-v0", entry_point="llm_auction_env.envs.bidding:LLMAuctionBiddingEnv")

__all__ = [
    "Ad", "AuctionInstance", "ClickFeedback", "Outcome", "Placement", "Query", "RewardConfig", "UserProfile",
]
