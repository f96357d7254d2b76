"""``sb3``: a trained stable-baselines3 policy as a :class:`llm_auction_env.envs.bidders.Bidder`.

The policy must have been trained on ``LLMAuctionBidding-v0`` (or any env whose observation is
:func:`llm_auction_env.envs.bidding.bidding_observation`): the bidder builds the same observation
from its context (value, ROI target, round) and returns the policy's action, clipped to
``[0, max_bid]``. ``model`` is an SB3 model or a path to a saved one (``algo`` names its class).
"""
from __future__ import annotations

import numpy as np

from llm_auction_env.envs.bidders import BIDDERS, BidContext, BidResult
from llm_auction_env.envs.objectives import check_result, read_context


@BIDDERS.register("sb3")
class SB3Bidder:
    def __init__(self, model, algo: str = "PPO", max_bid: float = 100.0, episode_length: int = 50,
                 deterministic: bool = True) -> None:
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            import stable_baselines3

            model = getattr(stable_baselines3, algo).load(model, device="cpu")
        if not hasattr(model, "predict"):
            raise ValueError("model must be a stable-baselines3 model (with .predict) or a path to one")
        self.model, self.max_bid = model, float(max_bid)
        self.episode_length, self.deterministic = episode_length, deterministic

    def bid(self, ctx: BidContext) -> float:
        from llm_auction_env.envs.bidding import bidding_observation

        value, tau, _ = read_context(ctx)
        max_bid = float(ctx.extra.get("max_bid", self.max_bid))
        obs = bidding_observation(value, tau, ctx.round % self.episode_length, self.episode_length, max_bid)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        b = float(np.asarray(action).reshape(-1)[0])
        if not np.isfinite(b):
            raise ValueError(f"policy returned a non-finite bid {b}")
        return float(np.clip(b, 0.0, max_bid))

    def update(self, ctx: BidContext, result: BidResult) -> None:
        check_result(result)
