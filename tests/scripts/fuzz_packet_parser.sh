#!/usr/bin/env bash
# Builds the packet-parser fuzz target with clang (libFuzzer, ASan, UBSan) and runs it for a
# bounded time, seeded with frames of every link type. Fails on any crash or sanitizer report.
# usage: fuzz_packet_parser.sh SOURCE_DIR WORK_DIR [SECONDS]
set -euo pipefail
source "$(dirname "$0")/fuzz_report.sh"
src=$1 work=$2 seconds=${3:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || seconds=60
# Each run starts from the seeds alone (what an earlier run found is not kept): with the fixed
# seed below, the same inputs every run, here as in CI.
rm -rf "$work/corpus" "$work"/crash-* "$work"/leak-* "$work"/timeout-*
mkdir -p "$work/corpus"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$src/sdk/include" -I"$src/plugins/features/flow_start" "$src/tests/fuzz/fuzz_packet_parser.cpp" "$src/sdk/src/packet_parser.cpp" \
  -o "$work/fuzz_packet_parser"
# Seeds: byte 0 picks the link type (0 Ethernet, 1 raw IP, 4 SLL), then a real-looking frame.
ipv4_tcp='\x45\x00\x00\x2c\x12\x34\x40\x00\x40\x06\x00\x00\x0a\x00\x00\x01\xc0\xa8\x01\x02\x04\xd2\x01\xbb\x00\x00\x00\x01\x00\x00\x00\x00\x60\x18\xff\xff\x00\x00\x00\x00\x02\x04\x05\xb4'
ipv6_udp='\x60\x00\x00\x00\x00\x10\x00\x40\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x11\x00\x00\x00\x00\x00\x00\x00\x00\x35\x00\x35\x00\x08\x00\x00'
printf "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x81\x00\x00\x64\x08\x00$ipv4_tcp" > "$work/corpus/eth_vlan_tcp"
printf "\x01$ipv4_tcp" > "$work/corpus/raw_tcp"
printf "\x01$ipv6_udp" > "$work/corpus/raw_ipv6_hop_udp"
printf "\x04\x00\x00\x00\x01\x00\x06\x00\x01\x02\x03\x04\x05\x00\x00\x86\xdd$ipv6_udp" > "$work/corpus/sll_ipv6"
# Payloads for the server name parser: a TLS ClientHello with an SNI, an HTTP request with a Host.
random=$(printf 'r%.0s' {1..32})
printf "\x01\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03${random}\x00\x00\x02\x13\x01\x01\x00\x00\x14\x00\x0a\x00\x00\x00\x00\x00\x0c\x00\x0a\x00\x00\x07zoom.us" \
  > "$work/corpus/tls_client_hello"
printf "\x01GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: www.example.org:8080\r\n\r\n" > "$work/corpus/http_request"
status=0
"$work/fuzz_packet_parser" -seed=1 -max_total_time="$seconds" -print_final_stats=1 -max_len=2048 \
  -artifact_prefix="$work/" "$work/corpus" > "$work/fuzz.log" 2>&1 || status=$?
fuzz_report fuzz_packet_parser "$work/fuzz_packet_parser" "$work" "$status" 25
echo "fuzz_packet_parser: ${seconds}s without a crash or sanitizer report"
