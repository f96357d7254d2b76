import csv, sys, numpy as np
def load(path, mech):
    rows=[r for r in csv.DictReader(open(path)) if r["mechanism"]==mech]
    return {r["query_id"]: r for r in rows}
def paired(a, b, col="expected_reward", n=4000, seed=0):
    keys=sorted(set(a)&set(b)); d=np.array([float(a[k][col])-float(b[k][col]) for k in keys])
    rng=np.random.default_rng(seed); bs=[d[rng.integers(0,len(d),len(d))].mean() for _ in range(n)]
    return len(keys), d.mean(), np.percentile(bs,2.5), np.percentile(bs,97.5)
if __name__=="__main__":
    (pa,ma),(pb,mb)=[x.split(":") for x in sys.argv[1:3]]
    for col in ("expected_reward","expected_revenue","n_ads"):
        print(col, "n=%d %+.2f [%+.2f, %+.2f]"%paired(load(pa,ma),load(pb,mb),col))
