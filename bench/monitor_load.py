#!/usr/bin/env python3
"""CPU use and peak memory of the decompute monitor while it follows a tree of N processes
at the default 1 s interval. Usage: bench/monitor_load.py [N=200] [SECONDS=30]

The workload is a shell that starts N `sleep` processes and waits. We read decompute's own
utime+stime from /proc between t=5 s and t=SECONDS-2 s (after the tree is up), and its
VmHWM (peak RSS) at the end of that window.
"""
import os, subprocess, sys, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
secs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
exe = os.path.join(root, "target/release/decompute")
if not os.path.exists(exe):
    subprocess.run(["cargo", "build", "--release"], cwd=root, check=True)
hz = os.sysconf("SC_CLK_TCK")
script = f"for i in $(seq {n}); do sleep {secs} & done; wait"
p = subprocess.Popen([exe, "run", "--quiet", "--json", "/tmp/decompute-load.json", "--", "sh", "-c", script])

def cpu_s():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz

time.sleep(5)
c0, t0 = cpu_s(), time.monotonic()
time.sleep(secs - 7)
c1, t1 = cpu_s(), time.monotonic()
hwm = [l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM")][0].split()[1]
p.wait()
import json
r = json.load(open("/tmp/decompute-load.json"))
print(f"processes followed: {r['processes_followed']}")
print(f"monitor CPU: {100 * (c1 - c0) / (t1 - t0):.3f} % of one core over {t1 - t0:.1f} s")
print(f"monitor peak RSS: {int(hwm) / 1024:.1f} MB")
