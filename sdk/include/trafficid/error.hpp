// The one exception type of the SDK: a message a user can act on (what failed, where, how to fix).
#pragma once
#include <stdexcept>
#include <string>

#include "trafficid/export.hpp"

namespace trafficid {

class TRAFFICID_SDK_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
  ~Error() override;
};

}  // namespace trafficid
