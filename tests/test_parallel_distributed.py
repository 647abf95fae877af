"""Across machines on JAX's multi-controller runtime: two processes on this machine join one
`jax.distributed` cluster (coordinator on 127.0.0.1, CPU collectives), split a batch of prompts
over their devices with `data_parallel`, and each receives the single-process answer."""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

WORKER = r"""
import json, sys
import jax
pid, port = int(sys.argv[1]), int(sys.argv[2])
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=60)
import jax.numpy as jnp
import numpy as np
from infograv.parallel import data_parallel

rng = np.random.default_rng(3)          # the same data on both processes
emb = rng.normal(size=(12, 4))
hidden = rng.normal(size=(5, 4))        # 5 prompts over 2 processes: one padded row
theta = np.array([0.4, -0.2, 0.1, 0.3])

def rows(h, e, th):
    logp = jax.nn.log_softmax(h @ e.T, axis=-1)
    return logp, logp[:, 0] * jnp.tanh(h @ th)

logp, extra = data_parallel(rows)(hidden, emb, theta)
grad = jax.grad(lambda th: data_parallel(rows)(hidden, emb, th)[1].sum())(theta)
out = {"process": jax.process_index(), "processes": jax.process_count(),
       "devices": jax.device_count(), "local_devices": jax.local_device_count(),
       "logp": np.asarray(logp).tolist(), "extra": np.asarray(extra).tolist(),
       "grad": np.asarray(grad).tolist()}
print("RESULT " + json.dumps(out), flush=True)
jax.distributed.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process(hidden, emb, theta):
    def rows(h, e, th):
        logp = jax.nn.log_softmax(h @ e.T, axis=-1)
        return logp, logp[:, 0] * jnp.tanh(h @ th)

    logp, extra = rows(hidden, emb, theta)
    grad = jax.grad(lambda th: rows(hidden, emb, th)[1].sum())(theta)
    return logp, extra, grad


@pytest.fixture(scope="module")
def two_processes() -> list[dict]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
            line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1]
            outs.append(json.loads(line[len("RESULT "):]))
    finally:
        for p in procs:  # a hung peer never outlives the test
            if p.poll() is None:
                p.kill()
                p.wait()
            for stream in (p.stdout, p.stderr):
                if stream is not None and not stream.closed:
                    stream.close()
    return outs


def test_two_processes_form_one_cluster(two_processes):
    assert sorted(o["process"] for o in two_processes) == [0, 1]
    for o in two_processes:
        assert o["processes"] == 2 and o["local_devices"] == 1 and o["devices"] == 2


def test_each_process_gets_the_single_process_answer(two_processes):
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(12, 4))
    hidden = rng.normal(size=(5, 4))
    theta = np.array([0.4, -0.2, 0.1, 0.3])
    logp, extra, grad = _single_process(jnp.asarray(hidden), jnp.asarray(emb),
                                        jnp.asarray(theta))
    for o in two_processes:
        # each row is computed whole on one process; the gradient sums the rows in another
        # order: agreement to a few ulp
        np.testing.assert_allclose(o["logp"], logp, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(o["extra"], extra, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(o["grad"], grad, rtol=1e-13, atol=1e-15)
