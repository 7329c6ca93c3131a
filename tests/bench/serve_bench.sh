#!/usr/bin/env bash
# Benchmark (not part of the test suite) of `trafficid serve`'s event streams:
#  1. latency: the time from an epoch's event (its "time", stamped when the run publishes it) to
#     its arrival on an open /events stream, over every epoch of a run (goal: under 1 s);
#  2. cost: training samples/s of the same run with 20 open streams against none (goal: within 5%);
#  3. the same cost as the server's own CPU time: a run trained by another process (`trafficid
#     run`), followed by 20 open streams against none, 10 s each, the server's utime + stime from
#     /proc (what the streams take from training on a busy machine, free of its changing speed).
# The run is the quickstart with an MLP of [1024, 1024] for 60 epochs on one thread, started through
# the API; the cost is measured on the mean samples/s of epochs 3 to 60.
# usage: tests/bench/serve_bench.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build} work=${2:-$(mktemp -d)}
tid=$(realpath "$build/bin/trafficid")
mkdir -p "$work/ws/experiments" && work=$(realpath "$work")
cp "$root/experiments/quickstart.toml" "$work/ws/experiments/"
"$tid" serve --workspace "$work/ws" --port 0 > "$work/serve.out" 2> "$work/serve.err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "^serving " "$work/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^serving //p' "$work/serve.out")
/usr/bin/python3 - "$url" "$work/ws" "$server" "$tid" <<'PY'
import http.client, json, os, sys, threading, time, urllib.parse
from datetime import datetime, timezone

url = urllib.parse.urlparse(sys.argv[1])
token = urllib.parse.parse_qs(url.query)["token"][0]
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

def request(method, path, body=None):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    c.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")

def start():
    status, r = request("POST", "/api/runs", {"experiment": "experiments/quickstart.toml", "set": [
        "models={ mlp = { layers = [1024, 1024] } }", "train.epochs=60", "train.patience=0", "train.threads=1"]})
    assert status == 201, r
    return r["id"]

def stream(run, on_event=None):
    """Reads a run's event stream to its end; on_event(kind, event, arrival seconds)."""
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    c.request("GET", f"/api/runs/{run}/events", headers=headers)
    r = c.getresponse()
    kind = None
    for raw in r:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
            if kind == "end":
                return
        elif line.startswith("data: ") and on_event:
            on_event(kind, json.loads(line[6:]), time.time())

# 1. Latency: one stream open from the start of the run.
latencies = []
def on_event(kind, event, arrived):
    if kind == "epoch":
        stamped = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
        latencies.append(arrived - stamped)
run = start()
stream(run, on_event)
latencies.sort()
print(f"latency epoch -> stream: {len(latencies)} epochs, median {latencies[len(latencies)//2]*1000:.0f} ms, "
      f"max {latencies[-1]*1000:.0f} ms (goal < 1000 ms)")

# 2. Cost: samples/s with no stream open, then with 20.
workspace = sys.argv[2]
def measured(run_id):
    while request("GET", f"/api/runs/{run_id}")[1]["running"]:
        time.sleep(0.5)
    path = os.path.join(workspace, run_id, "models", "mlp", "metrics.jsonl")
    values = [json.loads(l)["samples_per_second"] for l in open(path)][2:]  # the first epochs warm up
    return sum(values) / len(values)

client_cpu = []  # this script's own CPU (the 20 readers) per second of a crowded run
def crowded_run():
    before, started = os.times(), time.time()
    run = start()
    threads = [threading.Thread(target=stream, args=(run,)) for _ in range(20)]
    for t in threads: t.start()
    value = measured(run)
    for t in threads: t.join()
    after = os.times()
    client_cpu.append((after.user + after.system - before.user - before.system) / (time.time() - started))
    return value

# Two pairs in alternating order, so that neither side always runs first.
alone, crowded = [], []
alone.append(measured(start()))
crowded.append(crowded_run())
crowded.append(crowded_run())
alone.append(measured(start()))
a, c = sum(alone) / 2, sum(crowded) / 2
print(f"training samples/s: no stream open {alone[0]:.0f}, {alone[1]:.0f}; 20 open {crowded[0]:.0f}, {crowded[1]:.0f} "
      f"(means {a:.0f} and {c:.0f}: {100 * (c / a - 1):+.1f}%, goal within 5%); the 20 readers of this script took "
      f"{100 * sum(client_cpu) / len(client_cpu):.1f}% of a core meanwhile")

# 3. The streams' CPU time in the server, while another process trains (the server does nothing else).
import subprocess
server_pid, tid = int(sys.argv[3]), sys.argv[4]
def cpu_seconds():
    fields = open(f"/proc/{server_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
trainer = subprocess.Popen([tid, "-q", "run", os.path.join(workspace, "experiments", "quickstart.toml"),
                            "--set", "models={ mlp = { layers = [1024, 1024] } }", "--set", "train.epochs=100000",
                            "--set", "train.patience=0", "--set", "train.threads=1",
                            "--set", f"experiment.output_dir=\"{os.path.join(workspace, 'runs')}\""])
try:
    run = None
    while run is None:
        time.sleep(1)
        running = [r for r in request("GET", "/api/runs")[1] if r["running"]]
        run = running[0]["id"] if running else None
    time.sleep(5)  # training, past its first epochs
    def window(seconds=10):
        before, started = cpu_seconds(), time.time()
        time.sleep(seconds)
        return (cpu_seconds() - before) / (time.time() - started)
    idle = window()
    threads = [threading.Thread(target=stream, args=(run,), daemon=True) for _ in range(20)]
    for t in threads: t.start()
    time.sleep(1)
    busy = window()
    print(f"server CPU while another process trains: {100 * idle:.2f}% of a core with no stream open, "
          f"{100 * busy:.2f}% with 20 ({100 * (busy - idle) / 20:.3f}% per stream)")
finally:
    trainer.terminate()
    trainer.wait()
PY
