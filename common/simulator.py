"""Deterministic simulator of the pump bench: normal operation, labelled faults, a drift.

Normal operation uses the magnitudes of SKAB's anomaly-free file (vibration ~0.03 g,
current ~1.2 A, motor ~70 °C, fluid ~25 °C, 230 V, ~32 L/min), with a daily cycle,
seeded load changes and physical couplings: flow and current follow the load, the motor
temperature follows the current with a thermal lag, the fluid follows the ambient air.

Every random draw comes from a stream derived from ``(seed, purpose)``: normal operation
never reads the fault's stream, so for one seed a fault scenario is identical to
``"normal"`` before the fault's onset.

    python -m common.simulator --output data --seed 0 --hours 24
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from common.data import write_csv
from common.schema import BY_NAME, DEFAULT_EQUIPMENT_ID, EQUIPMENT_ID, SENSOR_NAMES, TIMESTAMP

SCENARIOS = ("normal", "bearing_wear", "cavitation", "valve_closure", "overheating", "stuck_sensor", "drift")
SCENARIO_LABELS = {
    "normal": "fonctionnement normal",
    "bearing_wear": "usure de roulement",
    "cavitation": "cavitation",
    "valve_closure": "fermeture de vanne",
    "overheating": "surchauffe",
    "stuck_sensor": "capteur bloqué",
    "drift": "dérive (recalibrage d'un capteur)",
}
FAULTS = ("bearing_wear", "cavitation", "valve_closure", "overheating", "stuck_sensor")
STUCK_CANDIDATES = ("pressure", "thermocouple", "volume_flow_rate_rms")
DRIFT_OFFSETS = {"thermocouple": (2.0, 3.0), "pressure": (0.05, 0.10)}  # recalibration offset range
MIN_FAULT_ROWS = 20
# Noise: relative for the vibrations, absolute (sensor unit) for the others.
NOISE = {
    "accelerometer1_rms": 0.05,
    "accelerometer2_rms": 0.05,
    "current": 0.02,
    "pressure": 0.008,
    "temperature": 0.15,
    "thermocouple": 0.05,
    "voltage": 0.8,
    "volume_flow_rate_rms": 0.4,
}
_LOAD, _NOISE, _FAULT = 1, 2, 100  # stream numbers; the fault stream adds the scenario's index


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent generator for one purpose (``stream``) of one ``seed``."""
    return np.random.default_rng([seed, stream])


def _lag(target: np.ndarray, period_s: float, tau_s: float) -> np.ndarray:
    """First-order lag (time constant ``tau_s``) of ``target``, starting at steady state."""
    alpha = 1.0 - np.exp(-period_s / tau_s)
    out = np.empty(len(target))
    y = float(target[0])
    for i, x in enumerate(target.tolist()):
        y += alpha * (x - y)
        out[i] = y
    return out


def _daily(timestamps: pd.DatetimeIndex) -> np.ndarray:
    """Daily cycle in [0, 1] from the time of day: 0 at 03:00, 1 at 15:00."""
    hours = timestamps.hour + timestamps.minute / 60 + timestamps.second / 3600
    return 0.5 - 0.5 * np.cos(2 * np.pi * (np.asarray(hours, dtype=float) - 3) / 24)


def _load(rng: np.random.Generator, seconds: np.ndarray, daily: np.ndarray, period_s: float) -> np.ndarray:
    """Pump load in [0.1, 1]: daily base plus random steps every 10-60 min, smoothed (5 min)."""
    count = int(seconds[-1] // 600) + 2
    ends = np.cumsum(rng.uniform(600, 3600, count))
    steps = rng.uniform(-0.2, 0.2, count + 1)[np.searchsorted(ends, seconds, side="right")]
    return np.clip(_lag(0.4 + 0.2 * daily + steps, period_s, 300.0), 0.1, 1.0)


def _window(rng: np.random.Generator, n: int, scenario: str) -> tuple[int, int]:
    """Fault rows ``[onset, end)``: onset in the second half, 10-30 % of the series long.

    A drift lasts until the end of the series.
    """
    length = max(MIN_FAULT_ROWS, int(rng.uniform(0.10, 0.30) * n))
    onset = int(rng.integers(n // 2, max(n // 2, n - length) + 1))
    return onset, n if scenario == "drift" else min(n, onset + length)


def _effects(scenario: str, rng: np.random.Generator, n: int, onset: int, end: int, period_s: float) -> dict:
    """Changes a fault makes to the clean signals, as ``{"mul": {...}, "add": {...}}`` arrays.

    ``add["temperature"]`` is extra heat added to the motor's steady-state temperature.
    ``progress`` rises from 0 to 1 over the window; ``onset_ramp`` reaches 1 in a few minutes.
    """
    rows = np.arange(n)
    inside = (rows >= onset) & (rows < end)
    progress = np.where(inside, (rows - onset + 1) / max(end - onset, 1), 0.0)
    ramp_rows = max(1.0, rng.uniform(180, 360) / period_s)
    onset_ramp = np.where(inside, np.minimum(1.0, (rows - onset + 1) / ramp_rows), 0.0)
    if scenario == "bearing_wear":
        vib1 = np.where(inside, 1.5 + (rng.uniform(3.0, 4.0) - 1.5) * progress, 1.0)
        heat = rng.uniform(1.0, 3.0) * progress
        mul = {"accelerometer1_rms": vib1, "accelerometer2_rms": 1 + 0.3 * (vib1 - 1)}
        return {"mul": mul, "add": {"temperature": heat}}
    if scenario == "cavitation":
        drop = rng.uniform(0.15, 0.30)
        bursts = (rng.random(n) < 0.15) * rng.exponential(0.03, n) * inside
        mul = {
            "volume_flow_rate_rms": 1 - drop * onset_ramp,
            "pressure": 1 - 0.4 * onset_ramp,
            "accelerometer2_rms": 1 + 0.8 * onset_ramp,
            "current": 1 - 0.05 * onset_ramp,
        }
        add = {"pressure": rng.normal(0.0, 0.03, n) * onset_ramp, "accelerometer2_rms": bursts}
        return {"mul": mul, "add": add}
    if scenario == "valve_closure":
        closed = rng.uniform(0.5, 0.8) * onset_ramp
        mul = {"volume_flow_rate_rms": 1 - closed, "pressure": 1 + 2.5 * closed, "current": 1 - 0.15 * closed}
        return {"mul": mul, "add": {}}
    if scenario == "overheating":
        mul = {"current": 1 + rng.uniform(0.10, 0.20) * progress}
        return {"mul": mul, "add": {"temperature": rng.uniform(10.0, 20.0) * progress}}
    return {"mul": {}, "add": {}}


def _clean(load: np.ndarray, ambient: np.ndarray) -> dict[str, np.ndarray]:
    """Noise-free signals of a healthy pump (motor temperature is computed later, from current)."""
    return {
        "accelerometer1_rms": 0.027 * (0.85 + 0.3 * load),
        "accelerometer2_rms": 0.040 * (0.85 + 0.3 * load),
        "current": 0.75 + 0.9 * load,
        "pressure": 0.02 + 0.16 * (0.7 + 0.6 * load) ** 2,
        "thermocouple": ambient + 3.0 + 1.5 * load,
        "volume_flow_rate_rms": 32.0 * (0.7 + 0.6 * load),
    }


def simulate(
    scenario: str = "normal",
    *,
    seed: int = 0,
    hours: float = 24.0,
    period_s: int = 60,
    start: str = "2026-01-05 00:00:00",
    equipment_id: str = DEFAULT_EQUIPMENT_ID,
) -> pd.DataFrame:
    """Simulate one scenario of the bench and return a labelled sensor frame.

    Columns: ``timestamp``, ``equipment_id``, the eight sensors (float64), ``anomaly`` and
    ``changepoint`` (int8 0/1) and ``fault`` (the scenario name on affected rows, else "").
    The same arguments always give the same frame. Raises ValueError (French) on a bad
    scenario or a series too short to hold a fault.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scénario inconnu : « {scenario} » (attendus : {', '.join(SCENARIOS)})")
    n = int(hours * 3600 // period_s) if period_s > 0 else 0
    if n < 4 * MIN_FAULT_ROWS:
        raise ValueError(f"série trop courte : {n} lignes, il en faut au moins {4 * MIN_FAULT_ROWS}")
    timestamps = pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=period_s))
    seconds = np.arange(n, dtype=float) * period_s
    daily = _daily(timestamps)
    ambient = 20.0 + 4.0 * daily
    load = _load(_rng(seed, _LOAD), seconds, daily, period_s)
    noise = _rng(seed, _NOISE).standard_normal((len(SENSOR_NAMES), n))

    fault_rng = _rng(seed, _FAULT + SCENARIOS.index(scenario))
    onset, end = _window(fault_rng, n, scenario) if scenario != "normal" else (n, n)
    effects = _effects(scenario, fault_rng, n, onset, end, period_s)
    signals = _clean(load, ambient)
    for name, factor in effects["mul"].items():
        signals[name] = signals[name] * factor
    for name, extra in effects["add"].items():
        if name != "temperature":
            signals[name] = signals[name] + extra
    heat = effects["add"].get("temperature", 0.0)
    signals["temperature"] = _lag(ambient + 35.0 + 13.0 * (signals["current"] / 1.2) ** 2 + heat, period_s, 1200.0)
    signals["voltage"] = 230.0 - 1.5 * daily - 1.0 * (signals["current"] - 1.2)

    frame = pd.DataFrame({TIMESTAMP: timestamps, EQUIPMENT_ID: equipment_id})
    for i, name in enumerate(SENSOR_NAMES):
        sd = NOISE[name]
        value = signals[name] * (1 + sd * noise[i]) if name.startswith("acc") else signals[name] + sd * noise[i]
        frame[name] = np.clip(value, BY_NAME[name].low, BY_NAME[name].high)
    frame["voltage"] = frame["voltage"].clip(230.0 * 0.98, 230.0 * 1.02)

    if scenario == "stuck_sensor":
        name = STUCK_CANDIDATES[int(fault_rng.integers(len(STUCK_CANDIDATES)))]
        frame.loc[onset : end - 1, name] = frame[name].iloc[onset - 1]
    if scenario == "drift":
        name = sorted(DRIFT_OFFSETS)[int(fault_rng.integers(len(DRIFT_OFFSETS)))]
        frame.loc[onset:, name] = frame[name].iloc[onset:] + fault_rng.uniform(*DRIFT_OFFSETS[name])

    rows = np.arange(n)
    in_fault = (rows >= onset) & (rows < end)
    is_fault = scenario in FAULTS
    frame["anomaly"] = (in_fault & is_fault).astype("int8")
    frame["changepoint"] = (is_fault & ((rows == onset) | ((rows == end) & (end < n)))).astype("int8")
    frame["fault"] = np.where(in_fault, scenario, "")
    return frame


def main(argv: list[str] | None = None) -> int:
    """Write one SKAB-format file per scenario into ``--output`` and print a French summary."""
    parser = argparse.ArgumentParser(description="Simule le banc de pompe : un fichier SKAB par scénario.")
    parser.add_argument("--output", required=True, type=Path, help="dossier de sortie")
    parser.add_argument("--seed", type=int, default=0, help="graine aléatoire (défaut : 0)")
    parser.add_argument("--hours", type=float, default=24.0, help="durée simulée en heures (défaut : 24)")
    parser.add_argument("--period-s", type=int, default=60, help="pas entre deux mesures en secondes (défaut : 60)")
    args = parser.parse_args(argv)
    for scenario in SCENARIOS:
        try:
            frame = simulate(scenario, seed=args.seed, hours=args.hours, period_s=args.period_s)
        except ValueError as exc:
            parser.error(str(exc))
        path = args.output / f"{scenario}.csv"
        write_csv(frame.drop(columns="fault"), path)
        print(f"{path} : {len(frame)} lignes, {int(frame['anomaly'].sum())} anomales ({SCENARIO_LABELS[scenario]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
