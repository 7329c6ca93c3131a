#!/usr/bin/env bash
# `trafficid capture` on the loopback interface while this script sends it known UDP datagrams:
# rotation by packet count, exact contents, and SIGINT mid-capture leaving only valid files.
# Needs root (or CAP_NET_RAW); CI runs as root.
# usage: live_capture.sh TRAFFICID
set -euo pipefail
tid=$1
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Only our datagrams are captured: the random port may also be the ephemeral port of another
# program (a DNS reply on lo), so the filter also asks for the payload to start with "traf".
port=$((40000 + RANDOM % 20000))

send() {  # send N datagrams "trafficid-0001".. to the port, a little apart
  for i in $(seq 1 "$1"); do printf "trafficid-%04d" "$i" > "/dev/udp/127.0.0.1/$port"; sleep 0.002; done
}
wait_started() {  # until the capture says it is listening (on a loaded CI machine this can take seconds)
  for _ in $(seq 1 600); do
    grep -q "capture lo: listening" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the capture did not start listening within 60 s: $(cat "$1")"
}
# Every capture is waited for with a watchdog: a lost datagram fails the test with a message, not a hang.
finish() {  # PID WHAT: its exit status, or a failure after 60 s
  for _ in $(seq 1 600); do
    kill -0 "$1" 2>/dev/null || { wait "$1"; return; }
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
  fail "$2 still running after 60 s"
}

# 1. Rotation every 100 packets, stop at 250.
"$tid" capture -i lo -w "$work/rot" -f "udp and dst port $port and udp[8:4] = 0x74726166" -c 100 --count 250 --progress 0.2 \
  > "$work/rot.log" 2>&1 &
pid=$!
wait_started "$work/rot.log"
send 250
finish "$pid" "the capture of 250 datagrams" || fail "capture exited with an error: $(cat "$work/rot.log")"
mapfile -t files < <(ls "$work/rot")
[[ ${#files[@]} -eq 3 ]] || fail "expected 3 files, got: ${files[*]}"
counts=$(for f in "${files[@]}"; do capinfos -T -r -c "$work/rot/$f" | cut -f2; done | tr '\n' ' ')
[[ "$counts" == "100 100 50 " ]] || fail "packets per file: $counts"
# Decoded as plain data: tshark dissects some ports as a protocol (44818 as EtherNet/IP), whose
# payload then has no data.data field.
payloads=$(for f in "${files[@]}"; do tshark -r "$work/rot/$f" -d "udp.port==$port,data" -T fields -e data.data; done | xxd -r -p | tr -d '\n')
expected=$(for i in $(seq 1 250); do printf "trafficid-%04d" "$i"; done)
[[ "$payloads" == "$expected" ]] || fail "captured payloads differ from what was sent"
grep -q "250 captured, 250 written, 0 dropped by the kernel" "$work/rot.log" || fail "summary: $(tail -1 "$work/rot.log")"

# 2. SIGINT in the middle: the current file is closed and named; nothing half-written remains.
"$tid" capture -i lo -w "$work/int" -f "udp and dst port $port and udp[8:4] = 0x74726166" -c 64 --progress 0.2 \
  > "$work/int.log" 2>&1 &
pid=$!
wait_started "$work/int.log"  # not a fixed sleep: on a busy machine the capture takes longer to open lo
send 150
kill -INT "$pid"
finish "$pid" "the capture after SIGINT" || fail "capture after SIGINT exited non-zero: $(cat "$work/int.log")"
[[ -z "$(ls -A "$work/int" | grep -v '\.pcap$' || true)" ]] || fail "files other than .pcap left: $(ls -A "$work/int")"
total=0
for f in "$work"/int/*.pcap; do
  n=$(capinfos -T -r -c "$f" | cut -f2) || fail "$f is not a valid capture"
  total=$((total + n))
done
[[ $total -eq 150 ]] || fail "after SIGINT the files hold $total packets, 150 were sent"
grep -q "150 captured, 150 written" "$work/int.log" || fail "summary after SIGINT: $(tail -1 "$work/int.log")"

# 3. The same plugin as an experiment's capture source: `live:lo`.
cat > "$work/live.toml" <<TOML
[capture]
sources = ["live:lo"]
[capture.live]
filter = "udp and dst port $port and udp[8:4] = 0x74726166"
count = 40
TOML
# `run` loads every plugin (LibTorch among them) before it opens lo, and prints nothing when it is
# listening: send datagrams until it has taken its 40, for at most 60 s.
"$tid" -q run "$work/live.toml" --run-dir "$work/run" &
pid=$!
for i in $(seq 1 6000); do
  kill -0 "$pid" 2>/dev/null || break
  printf "trafficid-%04d" "$((i % 10000))" > "/dev/udp/127.0.0.1/$port"
  sleep 0.01
done
finish "$pid" "the experiment with a live source" || fail "experiment with a live source failed"
grep -q '"packets": 40,' "$work/run/capture/summary.json" || fail "live experiment: $(grep -m1 packets "$work/run/capture/summary.json")"
grep -q "interface = 'lo'" "$work/run/config.resolved.toml" || fail "live experiment: resolved config"

# 4. Clear errors.
set +e
"$tid" capture -i nosuch0 -w "$work/x" 2> "$work/err"; s1=$?
"$tid" capture -i lo -w "$work/x" -f "udp prt 5" 2> "$work/err2"; s2=$?
set -e
# A kernel buffer of 2 GiB or more overflowed libpcap's int (and was silently ignored): refused.
s5=0; "$tid" capture -i lo -w "$work/x" --buffer-size 2048 2> "$work/err5" || s5=$?
[[ $s5 -ne 0 ]] && grep -q "2047" "$work/err5" || fail "--buffer-size 2048: $(cat "$work/err5")"
printf '[capture]\nsources = ["live"]\n[capture.live]\ninterface = "lo"\nbuffer_size_mb = 4096\n' > "$work/big.toml"
s6=0; "$tid" validate "$work/big.toml" 2> "$work/err6" || s6=$?
[[ $s6 -eq 2 ]] && grep -q "big.toml:5:18: capture.live.buffer_size_mb: 4096 is out of range \[1, 2047\]" "$work/err6" \
  || fail "buffer_size_mb = 4096: $(cat "$work/err6")"
[[ $s1 -ne 0 ]] && grep -q "no such interface 'nosuch0' (interfaces: .*lo" "$work/err" || fail "unknown interface: $(cat "$work/err")"
[[ $s2 -ne 0 ]] && grep -q "bad capture filter 'udp prt 5'" "$work/err2" || fail "bad filter: $(cat "$work/err2")"
set +e
"$tid" capture -i lo -w /proc/trafficid-cannot-write-here 2> "$work/err3"; s3=$?
chmod 711 "$work" && mkdir -m 777 "$work/nobody"  # a folder the unprivileged user may write
setpriv --reuid=65534 --regid=65534 --clear-groups "$tid" capture -i lo -w "$work/nobody" 2> "$work/err4"; s4=$?
set -e
[[ $s3 -ne 0 ]] && grep -q "cannot write to /proc/trafficid-cannot-write-here" "$work/err3" || fail "unwritable folder: $(cat "$work/err3")"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$tid" --version > /dev/null 2>&1; then
  [[ $s4 -ne 0 ]] && grep -q "no permission to capture on 'lo'.*setcap cap_net_raw" "$work/err4" \
    || fail "no permission: $(cat "$work/err4")"
else
  echo "no-permission message: not checked (an unprivileged user cannot run $tid from this folder)"
fi
echo "live_capture: rotation, contents, SIGINT and errors checked on lo"
