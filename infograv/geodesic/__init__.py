"""Geodesics (initial- and boundary-value), conserved quantities, and Langevin dynamics."""

from ._batch import (
    BatchGeodesicSolution as BatchGeodesicSolution,
    geodesic_batch as geodesic_batch,
)
from ._bvp import (
    RESULTS as RESULTS,
    LogMapSolution as LogMapSolution,
    exp_map as exp_map,
    log_map as log_map,
    path_energy as path_energy,
)
from ._ivp import (
    AbstractGeodesicEvent as AbstractGeodesicEvent,
    GeodesicSolution as GeodesicSolution,
    HorizonCrossing as HorizonCrossing,
    LeavesDomain as LeavesDomain,
    NearToken as NearToken,
    energy as energy,
    geodesic as geodesic,
    killing_charge as killing_charge,
    momentum as momentum,
    nearest_token as nearest_token,
    norm as norm,
)
from ._langevin import LangevinSolution as LangevinSolution, langevin as langevin
