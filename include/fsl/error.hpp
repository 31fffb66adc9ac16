// User-facing errors: one exception type, caught in each app's main, printed as one line, exit 1.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace fsl {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// fail("file ", path, ": ", what) -> throws Error with the concatenated message.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

// Non-fatal warning on stderr, one line, prefixed "warning: ".
void warn(const std::string& message);

}  // namespace fsl
