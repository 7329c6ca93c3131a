// capture_interfaces(): the network interfaces libpcap can capture on, with their addresses.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <pcap/pcap.h>

#include "trafficid/capture.hpp"
#include "trafficid/error.hpp"

namespace trafficid {

std::vector<CaptureInterface> capture_interfaces() {
  char errbuf[PCAP_ERRBUF_SIZE] = "";
  pcap_if_t* all = nullptr;
  if (pcap_findalldevs(&all, errbuf) != 0) throw Error(std::string("cannot list network interfaces: ") + errbuf);
  std::vector<CaptureInterface> out;
  for (pcap_if_t* d = all; d; d = d->next) {
    CaptureInterface i;
    i.name = d->name;
    i.description = d->description ? d->description : "";
    i.up = d->flags & PCAP_IF_UP;
    i.running = d->flags & PCAP_IF_RUNNING;
    i.loopback = d->flags & PCAP_IF_LOOPBACK;
    for (pcap_addr_t* a = d->addresses; a; a = a->next) {
      if (!a->addr) continue;
      char text[INET6_ADDRSTRLEN] = "";
      if (a->addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->addr)->sin_addr, text, sizeof text);
      else if (a->addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->addr)->sin6_addr, text, sizeof text);
      if (*text) i.addresses.emplace_back(text);
    }
    out.push_back(std::move(i));
  }
  pcap_freealldevs(all);
  return out;
}

std::string interface_names() {
  std::vector<std::string> names;
  for (const auto& i : capture_interfaces()) names.push_back(i.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace trafficid
