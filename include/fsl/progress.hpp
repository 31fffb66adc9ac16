// Progress on long work: a redrawn bar on a terminal, a log line every few seconds otherwise.
#pragma once
#include <chrono>
#include <mutex>
#include <string>

namespace fsl {

class Progress {
 public:
  // `total` items; `unit_total` an optional second quantity (e.g. hours of audio) shown with
  // its rate, named `unit` ("h audio"). Output goes to stderr.
  Progress(std::string label, long total, double unit_total = 0, std::string unit = "");
  // Thread-safe: adds `n` items and `units` of the second quantity.
  void advance(long n = 1, double units = 0);
  // Free text shown after the bar (e.g. "loss 0.53").
  void set_status(const std::string& status);
  void finish();
  ~Progress();

 private:
  void draw(bool final);
  std::string label_, unit_, status_;
  long total_, done_ = 0;
  double unit_total_, units_done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace fsl
