"""Data parallelism over a batch axis with `jax.sharding`: one device, several devices, or
several processes (hosts) of JAX's multi-controller runtime (`jax.distributed`).

The study's heavy stages are independent per prompt (next-token distributions, per-prompt
losses of a kernel fit, the Fisher metric at each hidden state, a batch of geodesics): the
prompt axis is split over a one-axis device mesh, each device runs the stage on its rows with
`jax.shard_map`, and the rows are gathered back, so that the caller sees the one-device answer.
See `docs/scaling.md`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["batch_mesh", "data_parallel"]

_AXIS = "batch"


def batch_mesh(devices: Sequence[Any] | None = None, axis_name: str = _AXIS) -> Mesh:
    """A one-axis device mesh for data parallelism over a batch.

    Arguments:
        devices: the devices, default `jax.devices()`: every device of every process once
            `jax.distributed.initialize` has run, so the same call spans several hosts.
        axis_name: the mesh axis name.

    Returns:
        A `jax.sharding.Mesh` of shape `(len(devices),)`.

    Raises:
        ValueError: an empty device list.

    Example:
        >>> from infograv.parallel import batch_mesh
        >>> mesh = batch_mesh()
        >>> mesh.axis_names, mesh.size >= 1
        (('batch',), True)
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices: expected at least one device, got an empty list.")
    return Mesh(np.array(devs), (axis_name,))


def splits_locally(n_rows: int | None = None) -> bool:
    """Whether the package's own batch stages (the language model's forward pass, the kernel
    fit's loss) split their rows over devices: more than one device, one process, and (when
    given) at least one row per device. With several processes every host computes these
    stages itself (see `docs/scaling.md`).

    Example:
        >>> splits_locally() == (jax.device_count() > 1 and jax.process_count() == 1)
        True
    """
    n_dev = jax.device_count()
    return n_dev > 1 and jax.process_count() == 1 and (n_rows is None or n_rows >= n_dev)


def _is_traced(tree: Any) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(tree))


def _pad_rows(x: Any, pad: int) -> Any:
    # pad with copies of the last row: valid inputs, so that the padding cannot fail or
    # produce non-finite values (it is dropped from the result)
    if pad == 0:
        return x
    last = x[-1:]
    reps = (pad,) + (1,) * (x.ndim - 1)
    if isinstance(x, np.ndarray):
        return np.concatenate([x, np.tile(last, reps)], axis=0)
    return jnp.concatenate([x, jnp.tile(last, reps)], axis=0)


def _place(x: Any, sharding: NamedSharding) -> Any:
    # a global array from the full copy every process holds: each process supplies the rows
    # of its own devices (also correct with a single process)
    if isinstance(x, jax.Array) and x.is_fully_addressable and jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


@eqx.filter_jit
def _run(fn: Callable[..., Any], mesh: Mesh, axis: str, is_batch: tuple[bool, ...],
         n_rows: int, args: tuple[Any, ...]) -> Any:
    dynamic, static = eqx.partition(args, eqx.is_array)
    specs = tuple(
        jax.tree_util.tree_map(lambda _, b=b: P(axis) if b else P(), d)
        for d, b in zip(dynamic, is_batch, strict=True)
    )

    def local(dyn: tuple[Any, ...]) -> Any:
        return fn(*eqx.combine(dyn, static))

    out = jax.shard_map(local, mesh=mesh, in_specs=(specs,), out_specs=P(axis),
                        check_vma=False)(dynamic)
    replicated = NamedSharding(mesh, P())
    # drop the padding and gather the rows on every device (and every process)
    return jax.tree_util.tree_map(
        lambda a: jax.lax.with_sharding_constraint(a[:n_rows], replicated), out)


def data_parallel(
    fn: Callable[..., Any],
    *,
    batch_argnums: int | Sequence[int] = 0,
    mesh: Mesh | None = None,
) -> Callable[..., Any]:
    r"""Run a row-wise batch function data-parallel over the devices of a mesh.

    `fn(*args)` must treat the leading axis of its batch arguments as independent rows and
    return a pytree of arrays with one row per input row (leading axis `B`): e.g.
    `h ↦ log_softmax(h Eᵀ)` for next-token distributions, per-prompt losses, a batch of
    geodesics. The returned function splits the `B` rows over the mesh axis (padding `B` up
    to a multiple of the device count with copies of the last row), runs `fn` on each
    device's rows with `jax.shard_map`, drops the padding and gathers the rows on every
    device, so that

    $$\mathrm{data\_parallel}(f)(x, \theta) = f(x, \theta)$$

    up to the rounding of operations whose blocking depends on the number of rows. Other
    arguments (parameters, the embedding, a metric) are replicated. It composes with
    `jax.grad` and `jax.jit` (a reduction over rows, such as a loss, is taken on the gathered
    rows: `data_parallel(per_row_loss)(x, θ).mean()`).

    Several hosts: call `jax.distributed.initialize(...)` on every process first; the
    default mesh then holds the devices of all processes, every process passes the same
    full batch, and every process receives all rows (see `docs/scaling.md`).

    Arguments:
        fn: the row-wise function.
        batch_argnums: the positional arguments split over devices (pytrees whose array
            leaves all have the same leading length `B`).
        mesh: a one-axis mesh (default [`batch_mesh`][infograv.parallel.batch_mesh]`()`).

    Returns:
        A function with the signature of `fn`.

    Raises:
        ValueError: a batch argument without array leaves, leaves of different leading
            length, an empty batch, a `batch_argnums` out of range, or a mesh with more than
            one axis.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infograv.parallel import data_parallel
        >>> emb = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> probs = data_parallel(lambda h, e: jax.nn.softmax(h @ e.T, axis=-1))
        >>> p = probs(jnp.array([[0.0, 0.0], [1.0, -1.0], [2.0, 0.5]]), emb)
        >>> p.shape, bool(jnp.allclose(p.sum(axis=1), 1.0))
        ((3, 3), True)
    """
    nums = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    if not nums or not all(isinstance(i, int) for i in nums):
        raise ValueError(f"batch_argnums: expected an int or ints, got {batch_argnums!r}.")

    @functools.wraps(fn)
    def wrapped(*args: Any) -> Any:
        m = batch_mesh() if mesh is None else mesh
        if len(m.axis_names) != 1:
            raise ValueError(f"mesh: expected a one-axis mesh, got axes {m.axis_names}.")
        axis = m.axis_names[0]
        n_dev = m.devices.size
        for i in nums:
            if not -len(args) <= i < len(args):
                raise ValueError(
                    f"batch_argnums: {i} is out of range for {len(args)} positional arguments.")
        batch_idx = {i % len(args) for i in nums}
        rows = set()
        for i in sorted(batch_idx):
            leaves = [a for a in jax.tree_util.tree_leaves(args[i]) if eqx.is_array(a)]
            if not leaves:
                raise ValueError(f"argument {i}: a batch argument needs array leaves.")
            rows |= {int(np.shape(a)[0]) if np.ndim(a) else -1 for a in leaves}
        if len(rows) != 1 or min(rows) < 1:
            raise ValueError(
                f"batch arguments {sorted(batch_idx)}: every array leaf needs the same leading "
                f"batch length B ≥ 1, got {sorted(rows)}.")
        n_rows = rows.pop()
        pad = (-n_rows) % n_dev
        traced = _is_traced(args)
        shard, repl = NamedSharding(m, P(axis)), NamedSharding(m, P())
        out_args = []
        for i, a in enumerate(args):
            if i in batch_idx:
                a = jax.tree_util.tree_map(
                    lambda x: _pad_rows(x, pad) if eqx.is_array(x) else x, a)
            if not traced:
                sh = shard if i in batch_idx else repl
                a = jax.tree_util.tree_map(
                    lambda x, sh=sh: _place(x, sh) if eqx.is_array(x) else x, a)
            out_args.append(a)
        is_batch = tuple(i in batch_idx for i in range(len(args)))
        return _run(fn, m, axis, is_batch, n_rows, tuple(out_args))

    return wrapped
