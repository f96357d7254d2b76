import sys, json, time, torch
import numpy as np
torch.set_num_threads(1)
from mechanisms.irpo import IRPOConfig, build_components, fresh_bids
from llm_auction_env.llm.transformers_backend import TransformersBackend
from llm_auction_env import parsing
from llm_auction_env.llm.base import Sampling
biases=[float(b) for b in sys.argv[1].split(",")]; ntok=int(sys.argv[2])
cfg=IRPOConfig(n_queries=8, k_ads=8, constrain_ads=True)
comps=build_components(cfg)
model,tok=comps.load_base(); model.eval()
if tok.pad_token is None: tok.pad_token=tok.eos_token
be=TransformersBackend.from_model(model,tok,batch_size=16)
insts=fresh_bids(comps.instances, np.random.default_rng(1))
chats=[comps.chat(i) for i in insts]
for b in biases:
    t0=time.time()
    out=be.generate(chats,2,Sampling(0.7,0.8,20,ntok,seed=3),constrain_ads=[i.ads for i in insts],ad_open_bias=b)
    rows=[]
    for inst,row in zip(insts,out):
        for c in row:
            pl=parsing.placements(c.text, inst.ads); ids=parsing.valid_ids(pl)
            rows.append({"n":len(ids),"err":dict(parsing.error_counts(pl)),"text":c.text,"bids":inst.bids.tolist(),"ids":list(ids)})
    ns=[r["n"] for r in rows]
    print(json.dumps({"bias":b,"sec":round(time.time()-t0),"n_ads":ns,"frac_1_2":float(np.mean([1<=n<=2 for n in ns]))}),flush=True)
    json.dump(rows,open(f"/work/runs/bias-probe/b{b}_{ntok}.json","w"),indent=1)
