"""How often the nightly's change-point test fires by chance, and what it finds: simulated series.

    cd docs/measurements
    uv run python changepoints-calibration.py > changepoints-calibration.json

Flat series of Gaussian noise on the log (5%) give the chance rate at each length; a 10% step
at night 12 of 20 and a drift of 2% a night from night 10 of 17 give how often each is found,
and at which night, for noise of 1-5% (one night's value moves 2-5% on the 2-core VM).
"""

import json
import math
import random
import sys

from unet_decoder.provenance import provenance
from unet_decoder.tracking import changepoints as cp

TRIALS = 2000


def series(n, noise, level, rng):
    return [level(t) * math.exp(rng.gauss(0, noise)) for t in range(n)]


def main():
    rng = random.Random(0)
    chance = {}
    for n in (12, 20, 30):
        fired = sum(cp.find_change(series(n, 0.05, lambda t: 1.0, rng)) is not None
                    for _ in range(TRIALS))  # fmt: skip
        chance[str(n)] = fired / TRIALS
    found = {}
    cases = {
        "step 10% at night 12 of 20": (20, lambda t: 1.10 if t >= 12 else 1.0, 12),
        "drift 2%/night from night 10 of 17": (17, lambda t: 1.02 ** max(0, t - 9), 10),
    }
    for name, (n, level, start) in cases.items():
        for noise in (0.01, 0.03, 0.05):
            hits = [cp.find_change(series(n, noise, level, rng)) for _ in range(TRIALS // 4)]
            kept = [h for h in hits if h is not None]
            found[f"{name}, noise {noise:.0%}"] = {
                "found": len(kept) / len(hits),
                "at the night": sum(h.start == start for h in kept) / len(hits),
                "within one night": sum(abs(h.start - start) <= 1 for h in kept) / len(hits),
            }
    record = {"provenance": provenance(sys.argv), "min_score": cp.MIN_SCORE,
              "min_change": cp.MIN_CHANGE, "trials": TRIALS,
              "flat series (5% noise): share reported, by nights": chance,
              "changes found": found}  # fmt: skip
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
