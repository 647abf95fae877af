"""Data parallelism over a batch axis (prompts, orbits) with `jax.sharding`, on several
devices of one machine or several machines (`jax.distributed`). See `docs/scaling.md`."""

from ._data import batch_mesh as batch_mesh, data_parallel as data_parallel
