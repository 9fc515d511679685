"""The simulator's public face: everything callers used from the former single module, re-exported.

The work is done in the concept modules of this package: catalogue (grid sources, antennas), atmosphere
(site, bands, PWV, opacity, elevation, Tsys), sources (red-noise light curves, spectral indices, flux
errors), phases (offsets, drifts, structure-function phase noise, WVR), reference (fault severities, the
hidden reference QA0 and its reasons), generate (the pipeline that draws one batch), aods (simulated
Astronomers on Duty), database (simulate(): batches into the database) and demo (seed_demo_if_empty).
The physics and the sources of its numbers are described in docs/domain-simulator.md.
"""

from __future__ import annotations

from qa0_label.sim.aods import LEAD_NAME, AodProfile, aod_profiles, simulate_aod_labels
from qa0_label.sim.atmosphere import (
    BAND_EDGES_GHZ,
    BAND_WEIGHT,
    BANDS,
    EPOCH,
    LATITUDE_DEG,
    LONGITUDE_DEG,
    SPAN_DAYS,
    STANDARD_LO_GHZ,
    T_ATM_K,
    T_SPILL_K,
    TAU_LIMIT,
    TRX_K,
    max_elevation_deg,
    tau_zenith,
)
from qa0_label.sim.catalogue import ANTENNA_NAMES, ANTENNAS_7M, ANTENNAS_12M, GRID_SOURCES, parse_j_name
from qa0_label.sim.database import CHUNK_EBS, DETAIL_DB_COLUMNS, LIGHT_WORKERS, ProgressFn, simulate, write_batch
from qa0_label.sim.demo import DEMO_AODS, DEMO_EBS, DEMO_LABELS, DEMO_SEED, seed_demo_if_empty
from qa0_label.sim.generate import DETAIL_COLUMNS, EB_COLUMNS, PIPELINE, SimulatedBatch, generate, make_uids
from qa0_label.sim.reference import (
    FAULT_PROB,
    FAULTS,
    FLARE_NOTE_THRESHOLD,
    SEVERITY_KNOTS,
    reference_value,
    severity,
)

__all__ = [
    "ANTENNA_NAMES",
    "ANTENNAS_12M",
    "ANTENNAS_7M",
    "BANDS",
    "BAND_EDGES_GHZ",
    "BAND_WEIGHT",
    "CHUNK_EBS",
    "DEMO_AODS",
    "DEMO_EBS",
    "DEMO_LABELS",
    "DEMO_SEED",
    "DETAIL_COLUMNS",
    "DETAIL_DB_COLUMNS",
    "EB_COLUMNS",
    "EPOCH",
    "FAULTS",
    "FAULT_PROB",
    "FLARE_NOTE_THRESHOLD",
    "GRID_SOURCES",
    "LATITUDE_DEG",
    "LEAD_NAME",
    "LIGHT_WORKERS",
    "LONGITUDE_DEG",
    "PIPELINE",
    "SEVERITY_KNOTS",
    "SPAN_DAYS",
    "STANDARD_LO_GHZ",
    "TAU_LIMIT",
    "TRX_K",
    "T_ATM_K",
    "T_SPILL_K",
    "AodProfile",
    "ProgressFn",
    "SimulatedBatch",
    "aod_profiles",
    "generate",
    "make_uids",
    "max_elevation_deg",
    "parse_j_name",
    "reference_value",
    "seed_demo_if_empty",
    "severity",
    "simulate",
    "simulate_aod_labels",
    "tau_zenith",
    "write_batch",
]
