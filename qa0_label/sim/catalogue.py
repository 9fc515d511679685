"""The grid quasars the simulator observes and the antennas it observes them with (names as ALMA writes them)."""

from __future__ import annotations

import re

import numpy as np

# (name, alias, S(97.5 GHz) Jy, spectral index). The first 18 are the DOMAIN.md 60-day medians (alpha
# from the 97.5/343.5 GHz pair); the next 6 have the documented 97.5 GHz flux and an assumed alpha; the
# rest are real grid-source names with ILLUSTRATIVE fluxes (not catalogue values).
GRID_SOURCES: tuple[tuple[str, str, float, float], ...] = (
    ("J1256-0547", "3C279", 13.6, -0.55),
    ("J0319+4130", "3C84", 17.3, -0.68),
    ("J2253+1608", "3C454.3", 10.4, -0.68),
    ("J1229+0203", "3C273", 9.5, -0.92),
    ("J1924-2914", "", 5.8, -0.59),
    ("J0522-3627", "", 5.4, -0.24),
    ("J1058+0133", "", 4.6, -0.57),
    ("J0854+2006", "", 4.6, -0.47),
    ("J2258-2758", "", 3.8, -0.62),
    ("J0423-0120", "", 3.8, -0.52),
    ("J1427-4206", "", 3.7, -0.60),
    ("J1751+0939", "", 3.4, -0.46),
    ("J1337-1257", "", 3.4, -0.55),
    ("J1517-2422", "", 3.0, -0.32),
    ("J0538-4405", "", 2.4, -0.53),
    ("J0006-0623", "", 2.0, -0.66),
    ("J1107-4449", "", 1.5, -0.73),
    ("J1550+0527", "", 0.9, -0.81),
    ("J1733-1304", "NRAO530", 2.9, -0.55),
    ("J2056-4714", "", 1.7, -0.60),
    ("J2148+0657", "", 2.0, -0.50),
    ("J2232+1143", "", 3.6, -0.45),
    ("J1617-5848", "", 1.0, -0.70),
    ("J0750+1231", "", 1.0, -0.60),
    ("J0237+2848", "", 1.6, -0.55),
    ("J0238+1636", "", 1.1, -0.45),
    ("J0334-4008", "", 1.0, -0.60),
    ("J0457+2624", "", 0.8, -0.65),
    ("J0510+1800", "", 1.5, -0.50),
    ("J0519-4546", "", 1.2, -0.85),
    ("J1037-2934", "", 1.2, -0.55),
    ("J1146+3958", "", 1.0, -0.60),
    ("J1642+3948", "3C345", 2.5, -0.60),
    ("J1819-0258", "", 0.7, -0.70),
    ("J2025+3343", "", 1.5, -0.55),
    ("J1625-2527", "", 1.0, -0.60),
    ("J2157-6941", "", 1.5, -0.90),
    ("J2202+4216", "BL Lac", 3.0, -0.40),
)

_J_NAME = re.compile(r"^J(\d{2})(\d{2})([+-])(\d{2})(\d{2})$")


def parse_j_name(name: str) -> tuple[float, float]:
    """(RA in hours, declination in degrees) from a J2000 name such as J1256-0547."""
    m = _J_NAME.match(name)
    if m is None:
        raise ValueError(f"not a J-name: {name!r}")
    ra = int(m.group(1)) + int(m.group(2)) / 60.0
    dec = int(m.group(4)) + int(m.group(5)) / 60.0
    return ra, (-dec if m.group(3) == "-" else dec)


SRC_NAME = np.array([s[0] for s in GRID_SOURCES], dtype=object)
SRC_S0 = np.array([s[2] for s in GRID_SOURCES])
SRC_ALPHA = np.array([s[3] for s in GRID_SOURCES])
SRC_RA = np.array([parse_j_name(s[0])[0] for s in GRID_SOURCES])
SRC_DEC = np.array([parse_j_name(s[0])[1] for s in GRID_SOURCES])
# The documented grid sources are observed about twice as often as the illustrative ones.
SRC_WEIGHT = np.array([2.0 if i < 24 else 1.0 for i in range(len(GRID_SOURCES))])
SRC_WEIGHT /= SRC_WEIGHT.sum()

ANTENNAS_12M: tuple[str, ...] = tuple(
    [f"DA{i}" for i in range(41, 66)] + [f"DV{i:02d}" for i in range(1, 26)] + [f"PM{i:02d}" for i in range(1, 5)]
)
ANTENNAS_7M: tuple[str, ...] = tuple(f"CM{i:02d}" for i in range(1, 13))
ANTENNA_NAMES: tuple[str, ...] = ANTENNAS_12M + ANTENNAS_7M
ANT_OBJ = np.array(ANTENNA_NAMES, dtype=object)
