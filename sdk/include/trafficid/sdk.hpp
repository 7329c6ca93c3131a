// Everything a plugin author needs, in one include: the five kinds' interfaces, parameters and
// their schemas, packets, flows, features, metrics, training settings. The host's own formats
// (dataset folders, .npy, pcap writing) are in their headers, for code that needs them.
#pragma once
#include "trafficid/capture.hpp"
#include "trafficid/declared_params.hpp"
#include "trafficid/deep_packet.hpp"
#include "trafficid/error.hpp"
#include "trafficid/features.hpp"
#include "trafficid/files.hpp"
#include "trafficid/flow.hpp"
#include "trafficid/labeler.hpp"
#include "trafficid/metrics.hpp"
#include "trafficid/model.hpp"
#include "trafficid/packet.hpp"
#include "trafficid/params.hpp"
#include "trafficid/plugin.hpp"
#include "trafficid/tuner.hpp"
