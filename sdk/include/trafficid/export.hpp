// Symbol visibility for the SDK. Everything is built with -fvisibility=hidden; the interfaces
// that cross the plugin boundary are marked visible so typeinfo, vtables and exceptions match
// between the host and every plugin.
#pragma once
#include <boost/config.hpp>

#define TRAFFICID_VISIBLE BOOST_SYMBOL_VISIBLE
#if defined(TRAFFICID_SDK_BUILDING)
#define TRAFFICID_SDK_API BOOST_SYMBOL_EXPORT
#else
#define TRAFFICID_SDK_API BOOST_SYMBOL_VISIBLE
#endif
