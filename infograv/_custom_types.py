"""Array shapes, named once (jaxtyping) and reused across infograv.

Dimension names: `n` (manifold dimension, a metric is `n n`), `d` (semantic-space dimension),
`N` (vocabulary size), `B` (batch of queries), `K` (temperatures), `S` (samples), `L` (sequence).
"""

from jaxtyping import Array, Float, Int, PRNGKeyArray

Scalar = Float[Array, ""]
ScalarLike = float | Float[Array, ""]
Point = Float[Array, " n"]
Vector = Float[Array, " n"]
MetricMatrix = Float[Array, "n n"]
Christoffels = Float[Array, "n n n"]
Riemann = Float[Array, "n n n n"]
Embedding = Float[Array, "N d"]
Query = Float[Array, " d"]
Queries = Float[Array, "B d"]
Energies = Float[Array, " N"]
Logits = Float[Array, "*batch N"]
TokenIds = Int[Array, " L"]
Key = PRNGKeyArray

__all__ = [
    "Array", "Float", "Int", "Scalar", "ScalarLike", "Point", "Vector", "MetricMatrix",
    "Christoffels", "Riemann", "Embedding", "Query", "Queries", "Energies", "Logits", "TokenIds",
    "Key",
]
