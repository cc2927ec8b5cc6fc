#!/usr/bin/env python3
"""The node agent under load: CPU and resident memory of `decompute serve` at --interval 1s
with C cgroups (a cgroup v2 tree laid out in a temporary directory, each with cpu.stat and
memory.current that grow every second) while P processes run, and the latency of scrapes of
/metrics with all C cgroups named.

Usage: bench/serve_load.py [CGROUPS=500] [PROCESSES=2000] [SECONDS=40] [SCRAPES=1000]
"""
import os, shutil, socket, subprocess, sys, tempfile, threading, time

C = int(sys.argv[1]) if len(sys.argv) > 1 else 500
P = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
S = int(sys.argv[3]) if len(sys.argv) > 3 else 40
N = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
exe = os.path.join(root, "target/release/decompute")
if not os.path.exists(exe):
    subprocess.run(["cargo", "build", "--release"], cwd=root, check=True)
hz = os.sysconf("SC_CLK_TCK")

tmp = tempfile.mkdtemp(prefix="decompute-serve-bench.")
cg = os.path.join(tmp, "cgroup")
os.makedirs(cg)
open(os.path.join(cg, "cgroup.controllers"), "w").write("cpu memory\n")
dirs = []
for i in range(C):
    # Kubernetes-like nesting: slices of 10 pods.
    d = os.path.join(cg, f"kubepods.slice/kubepods-pod{i // 10:04d}.slice/cri-containerd-{i:08x}.scope")
    os.makedirs(d, exist_ok=True)
    dirs.append(d)
for d in set(os.path.dirname(x) for x in dirs) | set(dirs) | {os.path.join(cg, "kubepods.slice")}:
    open(os.path.join(d, "cpu.stat"), "w").write("usage_usec 0\n")
    open(os.path.join(d, "memory.current"), "w").write("0\n")
    open(os.path.join(d, "cgroup.procs"), "w").write("")

stop = False
def grow():
    t = 0
    while not stop:
        t += 1
        for i, d in enumerate(dirs):
            open(os.path.join(d, "cpu.stat"), "w").write(f"usage_usec {t * (1000 + i)}\n")
            open(os.path.join(d, "memory.current"), "w").write(f"{(i + 1) * 4096}\n")
        time.sleep(1)
threading.Thread(target=grow, daemon=True).start()

sleepers = subprocess.Popen(["sh", "-c", f"for i in $(seq {P}); do sleep {S + 60} & done; wait"])
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
agent = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}", "--interval", "1s",
                          "--top", str(C), "--no-gpu", "--cgroup-root", cg],
                         stderr=subprocess.DEVNULL)

def cpu_s():
    f = open(f"/proc/{agent.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz

def scrape():
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    out = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        out += b
    c.close()
    return out

time.sleep(5)
body = scrape()
series = body.count(b"decompute_cgroup_energy_joules_total{")
c0, t0 = cpu_s(), time.monotonic()
time.sleep(S - 5)
c1, t1 = cpu_s(), time.monotonic()
rss = [l for l in open(f"/proc/{agent.pid}/status") if l.startswith("VmRSS")][0].split()[1]
hwm = [l for l in open(f"/proc/{agent.pid}/status") if l.startswith("VmHWM")][0].split()[1]
lat = []
for _ in range(N):
    a = time.perf_counter()
    scrape()
    lat.append((time.perf_counter() - a) * 1e3)
lat.sort()
stop = True
agent.terminate(); agent.wait()
sleepers.kill(); subprocess.run(["pkill", "-f", f"sleep {S + 60}"])
shutil.rmtree(tmp)
print(f"cgroups: {C} ({series} cgroup series per scrape), processes: {P}")
print(f"agent CPU at 1 s: {100 * (c1 - c0) / (t1 - t0):.3f} % of one core over {t1 - t0:.0f} s (without scrapes)")
print(f"agent resident memory: {int(rss) / 1024:.1f} MB (peak {int(hwm) / 1024:.1f} MB)")
print(f"scrape latency over {N} scrapes: median {lat[len(lat) // 2]:.2f} ms, p99 {lat[int(len(lat) * 0.99)]:.2f} ms, max {lat[-1]:.2f} ms ({len(body) / 1024:.0f} KiB each)")
