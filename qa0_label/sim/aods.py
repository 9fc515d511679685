"""Simulated Astronomers on Duty: noisy thresholds on the same latent severities as the reference.

AoD 0 is strict (bias -0.35: borderline EBs go SemiPass/Fail and real flares are often SemiPassed), AoD 1
lenient (+0.35), the others near neutral; each also slips to a neighbouring value now and then (~2 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qa0_label.sim.reference import FAULTS, FLARE_NOTE_THRESHOLD
from qa0_label.sim.sources import rng as _rng


@dataclass(frozen=True)
class AodProfile:
    """A simulated Astronomer on Duty: name, threshold bias, decision noise, slip rate, speed."""

    name: str
    bias: float
    noise: float
    slip: float
    speed: float
    flare_suspicion: float


_AOD_NAMES: tuple[str, ...] = (
    "Valentina Rojas",
    "Kenji Tanaka",
    "Amara Okafor",
    "Lukas Brandt",
    "Sofía Herrera",
    "Pierre Dubois",
    "Ananya Iyer",
    "Tomás Cárdenas",
    "Mei-Ling Chen",
    "Oluwaseun Adeyemi",
    "Hannah Lindqvist",
    "Diego Fuentes",
)
LEAD_NAME = "Carolina Méndez"
"""The demo team lead (role lead, gives no labels)."""


def aod_profiles(k: int) -> list[AodProfile]:
    """K simulated AoDs: the first is strict, the second lenient, the rest near neutral (deterministic)."""
    out: list[AodProfile] = []
    for i in range(k):
        name = _AOD_NAMES[i % len(_AOD_NAMES)]
        if i >= len(_AOD_NAMES):
            name = f"{name} {i // len(_AOD_NAMES) + 1}"
        if i == 0:
            bias, noise, flare = -0.35, 0.12, 0.6
        elif i == 1:
            bias, noise, flare = 0.35, 0.12, 0.1
        else:
            # A fixed small spread so that "neutral" AoDs still differ a little from each other.
            bias, noise, flare = (-0.08, 0.05, 0.12, -0.03, 0.08)[i % 5], 0.2, 0.3
        speed = (1.3, 0.8, 1.0, 1.1, 0.9)[i % 5]
        out.append(AodProfile(name=name, bias=bias, noise=noise, slip=0.02, speed=speed, flare_suspicion=flare))
    return out


_COMMENTS: dict[str, str] = {
    "dead_antenna": "Dead antenna(s), amplitudes near zero{detail}.",
    "noisy_antenna": "Tsys far above the other antennas{detail}.",
    "tsys_spike": "Tsys spike in one scan{detail}.",
    "phase_jump": "Phase jump in one antenna{detail}.",
    "few_antennas": "Too few antennas{detail}.",
    "aborted": "Aborted, scans missing{detail}.",
    "bandpass_ripple": "Bandpass ripple above 3 dB{detail}.",
    "high_pwv": "PWV too high for the band{detail}.",
    "low_elevation": "Source too low{detail}.",
    "flux_offset": "Flux far from the catalogue, instrument suspected{detail}.",
    "phase_instability": "Poor phase stability{detail}.",
}


def simulate_aod_labels(
    *,
    ebs: pd.DataFrame,
    severity: pd.DataFrame,
    outcomes: pd.DataFrame | None = None,
    aods: int,
    labeled: int,
    seed: int,
) -> pd.DataFrame:
    """Exactly LABELED review events by AODS simulated AoDs on these EBs (pure; index of ebs = EB key).

    About a quarter of the labelled EBs get a second AoD's (blind) label. Columns: eb, aod (0-based, see
    aod_profiles), labeler, value, comment, seconds_on_eb, created_at (after the EB ended).
    """
    cols = ["eb", "aod", "labeler", "value", "comment", "seconds_on_eb", "created_at"]
    if labeled <= 0:
        return pd.DataFrame(columns=cols)
    if aods <= 0:
        raise ValueError("labels need at least one simulated AoD")
    n = len(ebs)
    if labeled > n * aods:
        raise ValueError(f"{labeled} labels cannot come from {aods} AoDs on {n} EBs (at most {n * aods})")
    rng = _rng(seed, int(ebs.index.min()) if n else 0, 0xA0D)
    profiles = aod_profiles(aods)
    # How many AoDs label each chosen EB: ~25 % of them twice (more only when labels outnumber EBs).
    primary = min(n, labeled if aods == 1 else math.ceil(labeled / 1.25))
    chosen = rng.permutation(n)[:primary]
    per_eb = np.ones(primary, dtype=np.int64)
    extra = labeled - primary
    while extra > 0:
        room = np.nonzero(per_eb < aods)[0]
        take = rng.permutation(room)[: min(extra, room.size)]
        per_eb[take] += 1
        extra -= take.size
    eb_pos = np.repeat(chosen, per_eb)
    slot = np.arange(eb_pos.size) - np.repeat(np.cumsum(per_eb) - per_eb, per_eb)
    who_order = np.argsort(rng.random((primary, aods)), axis=1)
    aod = who_order[np.repeat(np.arange(primary), per_eb), slot]

    keys = list(FAULTS)
    sev = severity[keys].to_numpy()[eb_pos]
    bias = np.array([p.bias for p in profiles])[aod]
    noise = np.array([p.noise for p in profiles])[aod]
    perceived = sev * np.exp(rng.normal(0.0, 1.0, sev.shape) * noise[:, None])
    s_seen = perceived.max(axis=1) + rng.normal(0.0, 1.0, eb_pos.size) * noise * 0.5
    top = np.array(keys, dtype=object)[perceived.argmax(axis=1)]
    idx = np.where(s_seen >= 2.0 + bias, 0, np.where(s_seen >= 1.0 + bias, 1, 2))  # 0 Fail, 1 SemiPass, 2 Pass
    flare = np.abs(severity["flare"].to_numpy()[eb_pos]) > FLARE_NOTE_THRESHOLD
    suspicious = flare & (rng.random(eb_pos.size) < np.array([p.flare_suspicion for p in profiles])[aod])
    idx = np.where(suspicious & (idx == 2), 1, idx)
    slip = rng.random(eb_pos.size) < np.array([p.slip for p in profiles])[aod]
    step = np.where(idx == 0, 1, np.where(idx == 2, -1, rng.choice([-1, 1], eb_pos.size)))
    idx = np.where(slip, idx + step, idx)
    value = np.array(["Fail", "SemiPass", "Pass"], dtype=object)[idx]

    speed = np.array([p.speed for p in profiles])[aod]
    secs = rng.lognormal(np.log(80.0), 0.5, eb_pos.size) * speed * np.where(idx == 2, 1.0, 1.6)
    secs = np.round(np.clip(secs, 5.0, 1800.0), 1)
    end = pd.DatetimeIndex(ebs["start_time"])[eb_pos] + pd.to_timedelta(ebs["duration_s"].to_numpy()[eb_pos], unit="s")
    delay_min = rng.lognormal(np.log(20.0), 0.8, eb_pos.size) + np.where(
        slot > 0, rng.lognormal(np.log(360.0), 1.0, eb_pos.size), 0.0
    )
    created = end + pd.to_timedelta(np.round(delay_min * 60.0, 3), unit="s")

    reasons = outcomes.set_index("eb")["reasons"] if outcomes is not None else None
    comments: list[str | None] = []
    say_pass = rng.random(eb_pos.size) < 0.4
    for i in range(eb_pos.size):
        if value[i] == "Pass":
            comments.append("No severe issue was found." if say_pass[i] else None)
            continue
        if flare[i] and sev[i].max() < 1.0:
            comments.append("Flux well off the catalogue; is it real? SemiPass until confirmed.")
            continue
        if sev[i].max() < 0.3:
            comments.append("Something looks odd in the amplitudes; marked to be safe.")
            continue
        detail = ""
        if reasons is not None:
            label = FAULTS[top[i]]
            found = [p for p in str(reasons.get(ebs.index[eb_pos[i]], "")).split("; ") if label in p]
            detail = f": {found[0].split(': ', 1)[-1]}" if found else ""
        comments.append(_COMMENTS[top[i]].format(detail=detail))
    frame = pd.DataFrame(
        {
            "eb": ebs.index.to_numpy()[eb_pos],
            "aod": aod.astype(np.int64),
            "labeler": [profiles[j].name for j in aod],
            "value": value,
            "comment": comments,
            "seconds_on_eb": secs,
            "created_at": created,
        }
    )
    return frame.sort_values("created_at", kind="stable", ignore_index=True)
