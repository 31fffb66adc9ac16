#include "fsl/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace fsl {

Progress::Progress(std::string label, long total, double unit_total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      unit_total_(unit_total),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(long n, double units) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  units_done_ += units;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if ((tty_ && since > 0.1) || (!tty_ && since > 5.0)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::set_status(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  status_ = status;
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ > 0 ? double(done_) / double(total_) : 1.0;
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  double eta = rate > 0 ? (total_ - done_) / rate : 0;
  char units[96] = "";
  if (!unit_.empty())
    std::snprintf(units, sizeof units, " | %.3g/%.3g %s (%.3g %s/s)", units_done_, unit_total_,
                  unit_.c_str(), elapsed > 0 ? units_done_ / elapsed : 0.0, unit_.c_str());
  char line[512];
  if (tty_) {
    const int width = 24;
    int fill = static_cast<int>(frac * width + 0.5);
    std::string bar(fill, '#');
    bar.resize(width, '.');
    std::snprintf(line, sizeof line, "\r%s [%s] %ld/%ld%s | %.0fs, ETA %.0fs %s\x1b[K", label_.c_str(),
                  bar.c_str(), done_, total_, units, elapsed, eta, status_.c_str());
    std::fputs(line, stderr);
    if (final) std::fputs("\n", stderr);
  } else {
    std::snprintf(line, sizeof line, "%s: %ld/%ld (%.0f%%)%s | %.0fs, ETA %.0fs %s\n",
                  label_.c_str(), done_, total_, 100 * frac, units, elapsed, eta, status_.c_str());
    std::fputs(line, stderr);
  }
  std::fflush(stderr);
}

}  // namespace fsl
