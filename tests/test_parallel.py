"""Data parallelism over prompts: on 4 forced CPU devices, `data_parallel` gives the one-device
answer for the study's heavy stages (next-token distributions, a kernel-fit loss and its
gradient, the Fisher metric, a batch of geodesics). The device count must be set before JAX
starts, so the check runs in a fresh interpreter."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infograv.parallel import batch_mesh, data_parallel

#: the start of every worker: 4 CPU devices (set before JAX starts), float64
FOUR_DEVICES = r"""
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 4, jax.devices()
"""

WORKER = r"""
import diffrax
import jax.numpy as jnp
import numpy as np
from infograv import geodesic as gd, geometry as geo
from infograv.geometry._metrics import fisher_from_energies
from infograv.parallel import data_parallel

rng = np.random.default_rng(7)
B, V, d = 7, 40, 5                      # 7 prompts over 4 devices: one padded row
emb = jnp.asarray(rng.normal(size=(V, d)))
hidden = jnp.asarray(rng.normal(size=(B, d)))
out = {}

def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

# 1. next-token distributions from hidden states: log softmax of the logits h Eᵀ
def dists(h, e):
    return jax.nn.log_softmax(h @ e.T, axis=-1)
par = data_parallel(dists)(hidden, emb)
out["distributions"] = rel(par, dists(hidden, emb))
out["distributions_sharded_over"] = len(par.sharding.device_set)

# 2. a kernel fit: per-prompt KL(p ‖ q_θ), q_θ ∝ exp(−A exp(−|h − x_i|²/2σ²)); loss = mean
p_real = jax.nn.softmax(jnp.asarray(rng.normal(size=(B, V))), axis=-1)
def kl_rows(h, p, theta, e):
    r2 = jnp.sum((h[:, None, :] - e[None, :, :]) ** 2, axis=-1)
    u = -jnp.exp(theta[0]) * jnp.exp(-r2 / (2 * jnp.exp(2 * theta[1])))
    logq = jax.nn.log_softmax(-u, axis=-1)
    return jnp.sum(p * (jnp.log(p) - logq), axis=-1)
theta = jnp.array([0.3, 0.1])
loss_par = lambda th: data_parallel(kl_rows, batch_argnums=(0, 1))(hidden, p_real, th, emb).mean()
loss_one = lambda th: kl_rows(hidden, p_real, th, emb).mean()
out["loss"] = rel(loss_par(theta), loss_one(theta))
out["gradient"] = rel(jax.grad(loss_par)(theta), jax.grad(loss_one)(theta))
out["jit_gradient"] = rel(jax.jit(jax.grad(loss_par))(theta), jax.grad(loss_one)(theta))

# 3. the Fisher metric at each hidden state: Cov_P(∂U)/T², the geometry's one formula
masses = jnp.asarray(rng.uniform(0.5, 2.0, size=V))
def fisher_rows(q, e, m):
    def one(x):
        energies = lambda y: m * jnp.exp(-jnp.sum((e - y[None, :]) ** 2, axis=-1) / 2)
        grad_u = jax.jacfwd(energies)(x)
        prob = jax.nn.softmax(-energies(x) / 0.7)
        return fisher_from_energies(grad_u, prob, 0.7)
    return jax.vmap(one)(q)
out["fisher"] = rel(data_parallel(fisher_rows)(hidden, emb, masses),
                    fisher_rows(hidden, emb, masses))

# 4. a batch of geodesics on e^{2φ}δ with Gaussian wells (the metric is replicated);
#    block_size=1: each orbit its own step control, so the split cannot change the steps
wells = geo.gaussian_wells(jnp.asarray(rng.normal(size=(3, 2))), jnp.array([0.5, 0.3, 0.4]),
                           width=0.8)
metric = geo.ConformalMetric(wells, dim=2)
x0 = jnp.asarray(rng.normal(size=(9, 2)))
v0 = jnp.asarray(rng.normal(size=(9, 2)))
def ends(m, x, v):
    sol = gd.geodesic_batch(m, x, v, 2.0, solver=diffrax.Tsit5(), block_size=1, rtol=1e-8,
                            atol=1e-8, throw=False)
    return sol.xs[-1], sol.vs[-1]
(xp, vp), (x1, v1) = data_parallel(ends, batch_argnums=(1, 2))(metric, x0, v0), ends(metric, x0, v0)
out["geodesic_x"], out["geodesic_v"] = rel(xp, x1), rel(vp, v1)
print("RESULT " + json.dumps(out))
"""


def _in_fresh_interpreter(code: str, timeout: int) -> dict:
    """Run `code` after `FOUR_DEVICES` in a new Python; its `RESULT {json}` line."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    res = subprocess.run([sys.executable, "-c", FOUR_DEVICES + code], capture_output=True,
                         text=True, env=env, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def four_devices() -> dict:
    return _in_fresh_interpreter(WORKER, 240)


# Each row is computed whole on one device in both runs, so the only differences are the
# rounding of products whose blocking depends on the number of rows (a few ulp); the mean
# and the gradient also sum the rows in another order: 1e-13 relative covers both.
@pytest.mark.parametrize("stage", ["distributions", "loss", "gradient", "jit_gradient", "fisher",
                                   "geodesic_x", "geodesic_v"])
def test_four_devices_give_the_one_device_answer(four_devices, stage):
    assert four_devices[stage] <= 1e-13


def test_rows_are_split_over_all_four_devices(four_devices):
    assert four_devices["distributions_sharded_over"] == 4


FIT_WORKER = r"""
import numpy as np
from infograv.model import Potential
from infograv.model import _fit as F

rng = np.random.default_rng(5)
V, d, B = 120, 5, 23                    # 23 prompts over 4 devices: one padded row
emb = rng.normal(size=(V, d))
h = rng.normal(size=(B, d))
r2 = ((1.3 * h[:, None, :] + 0.2 - emb[None]) ** 2).sum(-1)
z = 5.0 * np.exp(-r2 / 2.4)
logp = z - z.max(1, keepdims=True)
logp -= np.log(np.exp(logp).sum(1, keepdims=True))
unit = F.length_unit(h, logp, emb)
data = F.prepare_fit_data(h, logp, emb, unit)
F._CHUNK_ELEMS = 4 * V                  # the chunked loss inside each device's rows too
out = {}
import infograv.parallel._data as par   # where the fit looks it up
calls = []
plain = par.data_parallel
def counting(fn, **kw):
    calls.append(1)
    return plain(fn, **kw)
par.data_parallel = counting
fits = {}
for shard in (True, False):
    F._SHARD = shard
    f = F.fit_potential(Potential("gaussian", 3), data, unit=unit, query_map="affine",
                        max_steps=60)
    fits[shard] = (f.train_kl, f.params, F.kl_per_prompt(f, data).tolist(), f.steps)
out["train_kl"] = [fits[True][0], fits[False][0]]
out["params"] = [fits[True][1], fits[False][1]]
out["kl"] = [fits[True][2], fits[False][2]]
out["steps"] = [fits[True][3], fits[False][3]]
out["sharded_calls"] = len(calls)
print("RESULT " + json.dumps(out))
"""


def test_the_kernel_fit_is_data_parallel_and_equal_on_four_devices():
    out = _in_fresh_interpreter(FIT_WORKER, 400)
    assert out["sharded_calls"] > 0  # the loss's prompts were split over the devices
    sharded, single = out["train_kl"]
    assert sharded == pytest.approx(single, rel=1e-9, abs=1e-14)
    for k, v in out["params"][0].items():
        assert v == pytest.approx(out["params"][1][k], rel=1e-6, abs=1e-9), k
    np.testing.assert_allclose(out["kl"][0], out["kl"][1], rtol=1e-7, atol=1e-12)


LM_WORKER = r"""
import tempfile
from pathlib import Path
import jax.numpy as jnp
import numpy as np
sys.path.insert(0, "tests")
from test_lm_arch import GEMMA, random_weights, spm_vocab, write_gguf
from infograv import lm
from infograv.lm import _language_model as LM

tokens, scores, types = spm_vocab()
w = random_weights(np.random.default_rng(1), len(tokens), 2, GEMMA)
path = Path(tempfile.mkdtemp()) / "tiny-gemma3.gguf"
write_gguf(path, "gemma3", GEMMA, w, tokens, types, scores=scores, pattern=2)
model = lm.load_language_model(path, dtype=jnp.float64)
prompts = ["the cat", "a dog sat on", "hello", "on the mat the", "sat"]   # 5 rows, 4 devices
lp4, h4 = model.next_token_logprobs(prompts)
out = {"devices": len(lp4.sharding.device_set), "replicated": model._replicated is not None}
LM._SHARD = False
lp1, h1 = model.next_token_logprobs(prompts)
out["logp"] = float(np.max(np.abs(np.asarray(lp4) - np.asarray(lp1))))
out["hidden"] = float(np.max(np.abs(np.asarray(h4) - np.asarray(h1))))
print("RESULT " + json.dumps(out))
"""


def test_next_token_distributions_are_data_parallel_and_equal_on_four_devices():
    out = _in_fresh_interpreter(LM_WORKER, 400)
    assert out["devices"] == 4 and out["replicated"]
    assert out["logp"] <= 1e-12 and out["hidden"] <= 1e-12


def test_one_device_is_the_plain_function(rng):
    # in this process (one CPU device): the wrapper changes nothing
    h = jnp.asarray(rng.normal(size=(5, 3)))
    e = jnp.asarray(rng.normal(size=(11, 3)))

    def f(a, b):
        return jax.nn.log_softmax(a @ b.T, axis=-1)

    np.testing.assert_array_equal(data_parallel(f)(h, e), f(h, e))
    assert batch_mesh().axis_names == ("batch",)


def test_bad_batches_are_named():
    def f(a, b):
        return a + b

    with pytest.raises(ValueError, match="same leading batch length"):
        data_parallel(f, batch_argnums=(0, 1))(jnp.ones((3, 2)), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="B ≥ 1"):
        data_parallel(f)(jnp.ones((0, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="out of range"):
        data_parallel(f, batch_argnums=2)(jnp.ones((3, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match="array leaves"):
        data_parallel(f)(None, jnp.ones(2))
    with pytest.raises(ValueError, match="batch_argnums"):
        data_parallel(f, batch_argnums=())
