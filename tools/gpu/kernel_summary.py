"""Sums Nsight Compute's gpu__time_duration per kernel name: python3 kernel_summary.py profile.csv"""
import csv
import sys
from collections import defaultdict

rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
total, count = defaultdict(float), defaultdict(int)
for r in csv.DictReader(rows):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    ns = float(r["Metric Value"].replace(",", "")) * {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}[r["Metric Unit"]]
    name = r["Kernel Name"].split("(")[0][:90]
    total[name] += ns
    count[name] += 1
all_ns = sum(total.values())
print(f"{'kernel':90} {'calls':>6} {'ms':>9} {'share':>6}")
for name, ns in sorted(total.items(), key=lambda kv: -kv[1])[:25]:
    print(f"{name:90} {count[name]:6} {ns / 1e6:9.3f} {100 * ns / all_ns:5.1f}%")
print(f"{'all':90} {sum(count.values()):6} {all_ns / 1e6:9.3f}")
