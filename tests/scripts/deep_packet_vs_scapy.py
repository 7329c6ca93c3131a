#!/usr/bin/python3
"""Compares trafficid's deep_packet vectors (paper masking) with the reference peer's, packet by
packet. The peer's own `vector` function (shared/bench/deeppacket_scapy.py) is run over every
packet of every capture, in its order; trafficid's dataset rows say which input and packet they
come from. Usage: deep_packet_vs_scapy.py PEER.py DATASET_FOLDER CAPTURES_ROOT

Known, explained differences (counted, each must stay within its bound):
- packets outside any flow: IPv4/IPv6 fragments after the first carry no ports, so the flow
  tracker (as ndpiReader) counts them in no flow and they get no label; scapy keeps them.
- DNS by port: trafficid drops TCP/UDP packets on port 53 or 5353; scapy drops what it can
  dissect as DNS, so it keeps first fragments of large DNS responses and TCP segments in the
  middle of a DNS message (a zone transfer).
- ICMP errors quoting a DNS packet: scapy finds the quoted DNS layer and drops the ICMP packet;
  trafficid keeps it (ICMP is not DNS traffic).
- IPv6 with extension headers before UDP: scapy pads after byte 48 of the IPv6 packet (it
  assumes a bare 40-byte header); trafficid pads after the real UDP header, as the paper says.
Everything else must be byte-identical, and every packet scapy keeps inside a flow must be kept.
"""
import importlib.util
import json
import os
import sys

import numpy as np

peer_path, dataset, root = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("peer", peer_path)
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
from scapy.all import DNS, ICMP, IP, IPv6, TCP, UDP, PcapReader  # noqa: E402  (after the peer imported scapy)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import trafficid_dataset as td  # noqa: E402

m = td.manifest(dataset)
assert m["features"]["extractor"] == "deep_packet" and m["config"]["features"]["deep_packet"]["masking"] == "paper"
length = m["features"]["shape"][0]
assert length == 1500, "the peer's vectors are 1500 bytes"
path_of = {i["id"]: os.path.realpath(i["path"]) for i in m["inputs"]}
ours = {}  # (path, packet index) -> vector
for shard in m["shards"]:
    X = td.shard_features(dataset, m, shard["name"])
    files = np.load(os.path.join(dataset, shard["name"] + ".file.npy"))
    packets = np.load(os.path.join(dataset, shard["name"] + ".packet.npy"))
    for row in range(len(files)):
        ours[(path_of[int(files[row])], int(packets[row]))] = X[row]

classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
counts = {"read": 0, "peer_kept": 0, "ours_kept": 0, "both_kept": 0, "equal": 0, "fragment_outside_flows": 0,
          "dns_by_port": 0, "icmp_quoting_dns": 0, "ipv6_ext_udp_padding": 0}


def dns_port(pkt):
    for layer in (TCP, UDP):
        if layer in pkt and {pkt[layer].sport, pkt[layer].dport} & {53, 5353}:
            return True
    return False

problems = []
for c in classes:
    for f in sorted(os.listdir(os.path.join(root, c))):
        path = os.path.realpath(os.path.join(root, c, f))
        for index, pkt in enumerate(PcapReader(path)):
            counts["read"] += 1
            v = peer.vector(pkt)
            mine = ours.get((path, index))
            counts["peer_kept"] += v is not None
            counts["ours_kept"] += mine is not None
            if v is None and mine is None:
                continue
            counts["both_kept"] += v is not None and mine is not None
            if v is not None and mine is not None and np.array_equal(v, mine):
                counts["equal"] += 1
                continue
            ip = pkt[IP] if IP in pkt else (pkt[IPv6] if IPv6 in pkt else None)
            if mine is None and IP in pkt and (ip.frag > 0):
                counts["fragment_outside_flows"] += 1
                continue
            if mine is None and IPv6 in pkt and "IPv6ExtHdrFragment" in pkt and pkt["IPv6ExtHdrFragment"].offset > 0:
                counts["fragment_outside_flows"] += 1
                continue
            if v is not None and mine is None and dns_port(pkt) and DNS not in pkt:
                counts["dns_by_port"] += 1
                continue
            if v is None and mine is not None and ICMP in pkt and DNS in pkt:
                counts["icmp_quoting_dns"] += 1
                continue
            if (v is not None and mine is not None and IPv6 in pkt and UDP in pkt and ip.nh != 17):
                counts["ipv6_ext_udp_padding"] += 1
                continue
            if len(problems) < 20:
                first = None if v is None or mine is None else int(np.nonzero(v != mine)[0][0])
                problems.append(f"{c}/{f} packet {index}: peer {'kept' if v is not None else 'dropped'}, "
                                f"trafficid {'kept' if mine is not None else 'dropped'}"
                                + (f", first differing byte {first}" if first is not None else "")
                                + f": {pkt.summary()}")
            counts.setdefault("unexplained", 0)
            counts["unexplained"] += 1
print(json.dumps(counts, indent=1))
for p in problems:
    print("DIFFERENCE", p)
explained = counts["fragment_outside_flows"] + counts["dns_by_port"] - counts["icmp_quoting_dns"]
if counts["peer_kept"] - explained != counts["ours_kept"]:
    print(f"kept counts disagree beyond the explained differences: {counts['peer_kept']} - {explained} != {counts['ours_kept']}")
    sys.exit(1)
if counts["both_kept"] != counts["equal"] + counts["ipv6_ext_udp_padding"]:
    sys.exit(1)
sys.exit(1 if counts.get("unexplained", 0) else 0)
