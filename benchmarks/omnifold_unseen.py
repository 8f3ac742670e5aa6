"""OmniFold on a simulator written apart from the built-in toys: a 1-d physics latent, a 3-D output (one
column pure noise), heteroscedastic smearing, and a truth whose latent is bimodal (not a parameter
change of the base's N(0, 1)). Each method's scores on held-out truth go to
docs/omnifold/unseen.json.

    python benchmarks/omnifold_unseen.py
"""
import time, json, numpy as np, torch, warnings
import genrefine
from genrefine.generators.adapters import as_generator
torch.set_num_threads(1)
warnings.simplefilter("ignore")

def sim(z, rng):
    z = np.asarray(z)[:, 0]
    x1 = z ** 3 / 3 + 0.3 * (1 + np.abs(z)) * rng.normal(size=len(z))
    x2 = np.sin(z) + 0.2 * rng.normal(size=len(z))
    x3 = rng.normal(size=len(z))
    return np.stack([x1, x2, x3], 1)

rng = np.random.default_rng(11)
n = 50_000
zt = np.where(rng.random(n) < 0.5, rng.normal(-1, 0.3, n), rng.normal(1.2, 0.4, n))[:, None]
x = sim(zt, rng).astype(np.float32)
gen = as_generator(sim, latent_dim=1, stochastic=True, seed=2)
t = time.time()
rep = genrefine.compare(gen, x, methods=["rejection", "laser", "rejection-omnifold", "hmc-omnifold", "laser-omnifold"],
                        n_samples=20000, progress=False)
print("secs", round(time.time() - t))
for m in rep.methods:
    print(f"{m:20s}", {k: round(v.value, 4) for k, v in rep.scores[m].items() if k in ("marginal_jsd", "energy", "c2st_auc", "exact_emd")})
print("floor", {k: round(v.floor, 4) for k, v in rep.scores["base"].items() if k in ("marginal_jsd", "energy", "c2st_auc", "exact_emd")})
print(rep.diagnostics.get("pullback_spread"))
from genrefine.checkpoint import atomic_write_text
atomic_write_text("docs/omnifold/unseen.json", json.dumps({
    "command": "python benchmarks/omnifold_unseen.py", "seconds": time.time() - t,
    "scores": {m: {k: {"value": v.value, "floor": v.floor} for k, v in rep.scores[m].items()} for m in rep.methods},
    "pullback_spread": rep.diagnostics.get("pullback_spread")}, indent=1))
