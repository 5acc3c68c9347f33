"""Reads the streaming GEMM's stamp CSV (exp/stream-stamps: QUANT_GEMM_STREAM_STAMPS=DIR) and prints, per
problem, the medians over CTAs and k-blocks of where a stage's time goes, in SM cycles:

- issue -> full: the TMA producer found stage c free, until consumer warp 0 passed its `full` barrier
  (the stage's loads and scale copies in flight);
- scales lag: the scale warp found the stage free, after the producer did;
- full -> release: the consumer's wgmmas and wait on stage c;
- full gap: between the `full` passes of consecutive k-blocks (the CTA's rate: cycles per k-block);
- first full: from the first stage's issue (its CTA's first event) to its first `full` pass (ramp).

Usage: stream_stamps.py FILE.csv [...]"""
import csv, statistics, sys


def med(v):
    return statistics.median(v) if v else float("nan")


for name in sys.argv[1:]:
    rows = list(csv.DictReader(open(name)))
    by_cta = {}
    for r in rows:
        by_cta.setdefault(int(r["cta"]), {})[int(r["kblock"])] = {k: int(r[k]) for k in ("produce", "scales", "full", "release")}
    lat, lag, work, gap, first = [], [], [], [], []
    for cta, ks in by_cta.items():
        order = sorted(ks)
        for c in order:
            e = ks[c]
            if e["produce"] and e["full"]:
                lat.append(e["full"] - e["produce"])
            if e["produce"] and e["scales"]:
                lag.append(e["scales"] - e["produce"])
            if e["full"] and e["release"]:
                work.append(e["release"] - e["full"])
        fulls = [ks[c]["full"] for c in order if ks[c]["full"]]
        gap += [b - a for a, b in zip(fulls, fulls[1:])]
        if fulls and ks[order[0]]["produce"]:
            first.append(fulls[0] - ks[order[0]]["produce"])
    print(f"{name}: {len(by_cta)} CTAs, {len(rows)} k-blocks; cycles, median (p90):")
    for label, v in (("issue -> full", lat), ("scales lag", lag), ("full -> release", work), ("full gap", gap), ("first full", first)):
        p90 = sorted(v)[int(0.9 * (len(v) - 1))] if v else float("nan")
        print(f"  {label:16s} {med(v):10.0f} ({p90:.0f})")
