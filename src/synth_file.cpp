// One labelled file: background bed, labelled calls and distractors placed in time, each mixed at
// a drawn SNR against the bed's power in its own window, then channel effects and a final gain.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "fsl/error.hpp"
#include "fsl/synth.hpp"
#include "synth_rng.hpp"

namespace fsl {

using namespace synth_detail;

namespace {

struct Span {
  size_t begin, end;  // samples
};

// Regions where calls may start. Clustered files call in 2-3 bouts covering 25-45% of the file
// and are silent (background only) elsewhere.
std::vector<Span> active_regions(Layout layout, size_t n, std::mt19937_64& rng) {
  if (layout != Layout::clustered) return {{0, n}};
  int bouts = uniform_int(rng, 2, 3);
  double share = uniform(rng, 0.25, 0.45) / bouts;
  std::vector<Span> spans;
  for (int b = 0; b < bouts; ++b) {  // bout b lives in the b-th equal slice of the file
    double slice = double(n) / bouts, len = share * double(n);
    double s = slice * b + uniform(rng) * std::max(0.0, slice - len);
    spans.push_back({size_t(s), std::min(n, size_t(s + len))});
  }
  return spans;
}

struct Placed {
  size_t s0 = 0;
  std::vector<float> y;  // unit RMS
  int cls = 0;           // labelled class, or -1 - distractor index
  double snr_db = 0;
  bool unknown = false;
};

bool overlaps(const std::vector<Placed>& placed, int cls, size_t s0, size_t len, size_t gap) {
  for (const auto& p : placed)
    if (p.cls == cls && s0 < p.s0 + p.y.size() + gap && p.s0 < s0 + len + gap) return true;
  return false;
}

// Places `count` instances of a class; same-class instances never overlap (they would be one
// event to an annotator). Instances that find no room after a few tries are dropped.
void place_class(const CallClass& c, int cls, int count, const std::vector<Span>& regions,
                 size_t usable, int sr, std::mt19937_64& rng, std::vector<Placed>& placed,
                 bool exclusive) {
  const size_t gap = size_t(0.05 * sr);
  size_t total = 0;
  for (const auto& r : regions) total += r.end - r.begin;
  for (int k = 0; k < count; ++k) {
    Placed p;
    p.y = render_call(c, rng, sr);
    p.cls = cls;
    const size_t len = p.y.size();
    if (len + 1 >= usable) continue;
    for (int attempt = 0; attempt < 40; ++attempt) {
      // A uniform position over the regions, then clamp so the call ends inside the file.
      size_t pos = size_t(uniform(rng) * double(total)), s0 = 0;
      for (const auto& r : regions) {
        if (pos < r.end - r.begin) {
          s0 = r.begin + pos;
          break;
        }
        pos -= r.end - r.begin;
      }
      s0 = std::min(s0, usable - len);
      if (exclusive && overlaps(placed, cls, s0, len, gap)) continue;
      p.s0 = s0;
      placed.push_back(std::move(p));
      break;
    }
  }
}

}  // namespace

SynthFile render_file(const FileSpec& spec, std::mt19937_64& rng, bool keep_stems) {
  if (spec.sr <= 0 || spec.seconds <= 0) fail("render_file: bad sample rate or duration");
  if (spec.counts.size() != spec.labelled.size() ||
      spec.distractor_counts.size() != spec.distractors.size())
    fail("render_file: counts do not match classes");
  const int sr = spec.sr;
  const size_t n = size_t(std::lround(spec.seconds * sr));
  // Calls end >= 10 ms before the file's end, so rounded CSV times stay inside the file.
  const size_t usable = n > size_t(0.02 * sr) ? n - size_t(0.01 * sr) : n;

  SynthFile out;
  out.sr = sr;
  std::vector<float> bed = render_background(spec.background, rng, sr, n);
  const std::vector<Span> regions = active_regions(spec.layout, usable, rng);
  const int density = spec.layout == Layout::dense ? 3 : 1;

  std::vector<Placed> placed;
  for (size_t c = 0; c < spec.labelled.size(); ++c)
    place_class(spec.labelled[c], int(c), spec.counts[c] * density, regions, usable, sr, rng,
                placed, true);
  for (size_t d = 0; d < spec.distractors.size(); ++d)
    place_class(spec.distractors[d], -1 - int(d), spec.distractor_counts[d] * density, regions,
                usable, sr, rng, placed, false);
  std::stable_sort(placed.begin(), placed.end(),
                   [](const Placed& a, const Placed& b) { return a.s0 < b.s0; });

  // SNRs: uniform in range; the first `clean_first` events of class 0 are usable shots.
  int shots_left = spec.clean_first;
  for (auto& p : placed) {
    p.snr_db = uniform(rng, spec.snr_lo, spec.snr_hi);
    if (p.cls == 0 && shots_left > 0) {
      p.snr_db = std::max(p.snr_db, uniform(rng, 3.0, std::max(3.0, spec.snr_hi)));
      --shots_left;
    }
  }
  // UNK: per labelled class, the faintest share (at least one when the share is > 0).
  for (size_t c = 0; c < spec.labelled.size(); ++c) {
    std::vector<Placed*> mine;
    int skip = c == 0 ? spec.clean_first : 0;
    for (auto& p : placed)
      if (p.cls == int(c) && skip-- <= 0) mine.push_back(&p);
    size_t k =
        spec.unk_fraction > 0
            ? std::max<size_t>(1, size_t(std::lround(spec.unk_fraction * double(mine.size()))))
            : 0;
    k = std::min(k, mine.size());
    std::partial_sort(mine.begin(), mine.begin() + long(k), mine.end(),
                      [](const Placed* a, const Placed* b) { return a->snr_db < b->snr_db; });
    for (size_t i = 0; i < k; ++i) mine[i]->unknown = true;
  }

  out.audio = bed;
  if (keep_stems) out.labelled_stem.assign(n, 0.0f);
  for (const auto& p : placed) {
    const size_t len = p.y.size();
    double bed_power = std::max(1e-12, mean_square(bed.data() + p.s0, len));
    float g = float(std::sqrt(bed_power * std::pow(10.0, p.snr_db / 10.0)));
    for (size_t i = 0; i < len; ++i) out.audio[p.s0 + i] += g * p.y[i];
    if (keep_stems && p.cls >= 0)
      for (size_t i = 0; i < len; ++i) out.labelled_stem[p.s0 + i] += g * p.y[i];
    if (p.cls >= 0)
      out.events.push_back(
          {double(p.s0) / sr, double(p.s0 + len) / sr, p.cls, p.unknown, p.snr_db});
  }
  if (keep_stems) out.bed_stem = std::move(bed);

  if (spec.channel_effects) apply_channel(out.audio, rng, sr);
  float peak = 0;
  for (float v : out.audio) peak = std::max(peak, std::fabs(v));
  out.final_gain = peak > 0 ? float(uniform(rng, 0.25, 0.9)) / peak : 1.0f;
  for (auto& v : out.audio) v *= out.final_gain;
  return out;
}

}  // namespace fsl
