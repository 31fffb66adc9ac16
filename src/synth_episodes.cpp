// Episode sources: the file pool (sampler + gather) and online synthetic episodes. A synthetic
// episode is k_way independent acoustic scenes, one per new class; positives are crops of the
// class's calls, negatives crops of the same scene's other sounds (the file source's gaps).
#include "fsl/synth_episodes.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "fsl/audio.hpp"
#include "fsl/error.hpp"
#include "synth_rng.hpp"

namespace fsl {

using namespace synth_detail;

// ---- the file pool ---------------------------------------------------------------------------

FileEpisodeSource::FileEpisodeSource(const FeatureStore& store,
                                     const std::vector<EventClass>& classes, const TrainConfig& tp,
                                     int seg_frames)
    : store_(store),
      sampler_(classes, tp.k_way, tp.n_shot, tp.negative_train_contrast, tp.seed),
      seg_frames_(seg_frames),
      short_segment_(tp.short_segment) {}

void FileEpisodeSource::start_epoch(int, uint64_t epoch_seed, int) {
  sampler_.rng().seed(epoch_seed);
}

void FileEpisodeSource::next(float* x, std::vector<int>& labels) {
  auto draws = sampler_.next();
  labels.clear();
  for (auto& d : draws) labels.push_back(d.label);
  gather_segments(store_, draws, seg_frames_, short_segment_, sampler_.rng(), x);
}

MixedEpisodeSource::MixedEpisodeSource(std::unique_ptr<EpisodeSource> files,
                                       std::unique_ptr<EpisodeSource> online)
    : files_(std::move(files)), online_(std::move(online)) {
  if (files_->batch_size() != online_->batch_size())
    fail("train_param.source=mixed: the file and online episodes differ in size (",
         files_->batch_size(), " vs ", online_->batch_size(), ")");
}

void MixedEpisodeSource::start_epoch(int epoch, uint64_t epoch_seed, int num_episodes) {
  index_ = 0;
  files_->start_epoch(epoch, epoch_seed, (num_episodes + 1) / 2);
  online_->start_epoch(epoch, epoch_seed, num_episodes / 2);
}

void MixedEpisodeSource::next(float* x, std::vector<int>& labels) {
  (index_++ % 2 == 0 ? files_ : online_)->next(x, labels);
}

// ---- scenes ----------------------------------------------------------------------------------

namespace {

constexpr double kMarginS = 0.025;  // event widening, as build_event_classes
constexpr double kMinGapS = 0.2;    // shortest negative gap, as build_event_classes

// Copies a seg-long crop of frames [r.start, r.end) of src (frames, M) into dst (seg, M),
// normalised; short ranges are tiled or zero-padded (gather_segments' rule). The crop start is
// drawn with the synthesiser's own uniform_int (vendor-independent streams).
void cut_segment(const float* src, const FrameRange& r, int seg, int M, bool pad,
                 std::mt19937_64& rng, float mean, float inv_std, float* dst) {
  const int len = r.length();
  const int start = len > seg ? uniform_int(rng, r.start, r.end - seg) : r.start;
  cut_segment_rows(src, start, len, seg, M, pad, mean, inv_std, dst);
}

}  // namespace

SynthEpisodeParams SynthEpisodeParams::from(const Config& c, int seg_frames) {
  SynthEpisodeParams p;
  const auto& tp = c.train_param;
  p.k_way = tp.k_way;
  p.n_shot = tp.n_shot;
  p.negative_contrast = tp.negative_train_contrast;
  p.seg_frames = seg_frames;
  p.short_segment = tp.short_segment;
  p.features = c.features;
  p.seed = static_cast<uint64_t>(tp.seed);
  p.num_workers = std::max(1, c.runtime.num_workers);
  p.prefetch_factor = std::max(1, c.runtime.prefetch_factor);
  for (const auto& w : tp.synth_without_list()) {
    if (w == "classes") p.plain_classes = true;
    if (w == "confuser") p.no_confuser = true;
    if (w == "callers") p.no_callers = true;
    if (w == "background") p.no_background = true;
    if (w == "channel") p.no_channel = true;
    if (w == "lowrate") p.no_lowrate = true;
  }
  return p;
}

SynthScene render_scene(const SynthEpisodeParams& p, Frontend& fe, uint64_t seed) {
  std::mt19937_64 rng(seed);
  SynthOptions opt;
  opt.randomise = !p.plain_classes;  // wide class space, wider background swings
  // An ablated randomisation is still drawn, then dropped, so the rest of the scene's draws
  // stay the same as with it on.
  const int sr = p.features.sr, M = p.features.n_mels;
  const double fps = p.features.frame_rate();
  const int min_gap = std::max(1, int(std::lround(kMinGapS * fps)));
  const int per_class = 2 * p.n_shot;
  for (int attempt = 0; attempt < 20; ++attempt) {
    // Some recorders run at lower rates: after resampling their upper band is empty.
    int native = sr;
    if (chance(rng, 0.25)) native = std::min(sr, chance(rng, 0.5) ? 16000 : 11025);
    if (p.no_lowrate) native = sr;
    const double max_hz = std::min(0.45 * native, 0.95 * p.features.fmax);

    FileSpec spec;
    spec.sr = native;
    CallClass target = draw_class(rng, opt, max_hz);
    spec.labelled = {target};
    spec.counts = {per_class + uniform_int(rng, 0, p.n_shot)};
    const bool had_confuser = chance(rng, 0.7);
    if (had_confuser) {  // a same-band confuser: band energy alone cannot reject it
      spec.distractors.push_back(draw_confuser(target, rng, opt));
      spec.distractor_counts.push_back(uniform_int(rng, 1, per_class));
    }
    for (int k = uniform_int(rng, 0, 2); k > 0; --k) {  // other callers anywhere in the band
      spec.distractors.push_back(draw_class(rng, opt, max_hz));
      spec.distractor_counts.push_back(uniform_int(rng, 1, per_class));
    }
    if (p.no_confuser || p.no_callers) {
      std::vector<CallClass> keep;
      std::vector<int> counts;
      for (size_t i = 0; i < spec.distractors.size(); ++i) {
        const bool is_confuser = i == 0 && had_confuser;
        if (is_confuser ? p.no_confuser : p.no_callers) continue;
        keep.push_back(spec.distractors[i]);
        counts.push_back(spec.distractor_counts[i]);
      }
      spec.distractors = std::move(keep);
      spec.distractor_counts = std::move(counts);
    }
    spec.snr_lo = uniform(rng, -3, 8);
    spec.snr_hi = spec.snr_lo + uniform(rng, 4, 18);
    spec.unk_fraction = 0;
    spec.background = draw_background(rng, opt, max_hz);
    if (p.no_background) {  // a stationary coloured bed only
      spec.background.level_swing_db = 0;
      spec.background.rain_per_min = spec.background.wind_per_min = 0;
      spec.background.chorus.clear();
      spec.background.chorus_per_s = 0;
    }
    spec.channel_effects = chance(rng, 0.8);  // EQ, band limits, reverb, gain, clipping
    if (p.no_channel) spec.channel_effects = false;
    const double gap_s = uniform(rng, 0.3, 1.2);
    spec.seconds = std::clamp(spec.counts[0] * (1.5 * target.duration + gap_s) + 1.0, 3.0, 60.0);
    SynthFile file = render_file(spec, rng);

    std::vector<float> audio =
        native == sr ? std::move(file.audio) : resample(file.audio, native, sr);
    float peak = 0;  // peak normalisation, as the feature export does
    for (float v : audio) peak = std::max(peak, std::fabs(v));
    if (peak > 0)
      for (auto& v : audio) v /= peak;
    const std::string type = p.features.types().front();
    SynthScene s;
    s.cls = target;
    s.features = std::move(fe.compute(audio.data(), audio.size(), {type}).at(type));
    s.frames = int(s.features.size() / size_t(M));
    int prev_end = 0;
    for (const auto& ev : file.events) {  // sorted by start
      int a = std::min(seconds_to_frame(ev.start - kMarginS, fps), s.frames);
      int b = std::min(seconds_to_frame(ev.end + kMarginS, fps), s.frames);
      if (b <= a) continue;
      s.calls.push_back({0, a, b});
      if (a - prev_end >= min_gap) s.gaps.push_back({0, prev_end, a});
      prev_end = std::max(prev_end, b);
    }
    if (s.frames - prev_end >= min_gap) s.gaps.push_back({0, prev_end, s.frames});
    if (!s.calls.empty() && (!p.negative_contrast || !s.gaps.empty())) return s;
  }
  fail("synthetic scene ", seed, ": no usable calls or gaps after 20 draws");
}

FeatureStat measure_synth_stats(const SynthEpisodeParams& p, int scenes) {
  Frontend fe(FrontendParams::from(p.features));
  double sum = 0, sum_sq = 0;
  long long n = 0;
  for (int i = 0; i < scenes; ++i) {
    // A fixed stream, independent of the training seed: every run normalises alike.
    SynthScene s = render_scene(p, fe, derive_seed(0x5EED, 3, uint64_t(i)));
    for (float v : s.features) {
      sum += v;
      sum_sq += double(v) * v;
    }
    n += s.frames;
  }
  const double count = double(n) * p.features.n_mels, mean = sum / count;
  return {mean, std::sqrt(std::max(0.0, sum_sq / count - mean * mean)), n};
}

uint64_t synth_episode_seed(uint64_t seed, int epoch, long index) {
  return derive_seed(derive_seed(seed, 4, uint64_t(epoch)), 5, uint64_t(index));
}

void make_synth_episode(const SynthEpisodeParams& p, Frontend& fe, uint64_t episode_seed, float* x,
                        int* labels, std::vector<CallClass>* classes) {
  const int K = p.k_way, per = 2 * p.n_shot, M = p.features.n_mels, seg = p.seg_frames;
  const bool pad = p.short_segment == "pad";
  const float inv_std = 1.0f / (p.std > 0 ? p.std : 1.0f);
  const size_t seg_size = size_t(seg) * M;
  std::mt19937_64 crop_rng(derive_seed(episode_seed, 2, 0));
  if (classes) classes->clear();
  for (int c = 0; c < K; ++c) {
    SynthScene s = render_scene(p, fe, derive_seed(episode_seed, 1, uint64_t(c)));
    if (classes) classes->push_back(s.cls);
    // Positives: distinct calls while they last (shuffled), then reused with new crops.
    std::vector<int> order(s.calls.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    for (int i = int(order.size()) - 1; i > 0; --i)
      std::swap(order[size_t(i)], order[size_t(uniform_int(crop_rng, 0, i))]);
    for (int j = 0; j < per; ++j) {
      const int b = c * per + j;
      cut_segment(s.features.data(), s.calls[size_t(order[size_t(j) % order.size()])], seg, M, pad,
                  crop_rng, p.mean, inv_std, x + size_t(b) * seg_size);
      labels[b] = 2 * c;
    }
    if (!p.negative_contrast) continue;
    for (int j = 0; j < per; ++j) {  // negatives: the same scene without this class's calls
      const int b = K * per + c * per + j;
      const auto& gap = s.gaps[size_t(uniform_int(crop_rng, 0, int(s.gaps.size()) - 1))];
      cut_segment(s.features.data(), gap, seg, M, pad, crop_rng, p.mean, inv_std,
                  x + size_t(b) * seg_size);
      labels[b] = 2 * c + 1;
    }
  }
}

// ---- the worker pool -------------------------------------------------------------------------

struct SynthEpisodeSource::Pool {
  struct Episode {
    std::vector<float> x;  // (B, seg, M)
    std::vector<int> labels;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<long, Episode> ready;  // finished episodes of this epoch by index
  long next_claim = 0, next_consume = 0, limit = 0;
  long capacity = 1;  // episodes claimed but not yet consumed, at most
  int epoch = 0;
  uint64_t generation = 0;  // bumped by start_epoch: work of an older epoch is dropped
  bool stop = false;
  std::exception_ptr error;
  std::vector<std::thread> threads;
};

SynthEpisodeSource::SynthEpisodeSource(const SynthEpisodeParams& p)
    : p_(p), pool_(std::make_unique<Pool>()) {
  if (p_.k_way < 1 || p_.n_shot < 1 || p_.seg_frames < 1)
    fail("synth_online: k_way, n_shot and the segment length must be positive");
  pool_->capacity = long(std::max(1, p_.num_workers) * std::max(1, p_.prefetch_factor));
  for (int w = 0; w < std::max(1, p_.num_workers); ++w)
    pool_->threads.emplace_back([this] {
      Pool& q = *pool_;
      Frontend fe(FrontendParams::from(p_.features));  // one per thread (work buffers)
      std::unique_lock<std::mutex> lock(q.mu);
      for (;;) {
        q.cv.wait(lock, [&] {
          return q.stop || (q.next_claim < q.limit && q.next_claim < q.next_consume + q.capacity);
        });
        if (q.stop) return;
        const long index = q.next_claim++;
        const int epoch = q.epoch;
        const uint64_t generation = q.generation;
        lock.unlock();
        Pool::Episode e{
            std::vector<float>(size_t(p_.batch_size()) * p_.seg_frames * p_.features.n_mels),
            std::vector<int>(size_t(p_.batch_size()))};
        std::exception_ptr error;
        try {
          make_synth_episode(p_, fe, synth_episode_seed(p_.seed, epoch, index), e.x.data(),
                             e.labels.data());
        } catch (...) {
          error = std::current_exception();
        }
        lock.lock();
        if (generation != q.generation) continue;
        if (error)
          q.error = error;
        else
          q.ready.emplace(index, std::move(e));
        q.cv.notify_all();
      }
    });
}

SynthEpisodeSource::~SynthEpisodeSource() {
  {
    std::lock_guard<std::mutex> lock(pool_->mu);
    pool_->stop = true;
  }
  pool_->cv.notify_all();
  for (auto& t : pool_->threads) t.join();
}

void SynthEpisodeSource::start_epoch(int epoch, uint64_t, int num_episodes) {
  std::lock_guard<std::mutex> lock(pool_->mu);
  Pool& q = *pool_;
  ++q.generation;
  q.ready.clear();
  q.error = nullptr;
  q.next_claim = q.next_consume = 0;
  q.limit = std::max(0, num_episodes);
  q.epoch = epoch;
  q.cv.notify_all();
}

void SynthEpisodeSource::next(float* x, std::vector<int>& labels) {
  Pool& q = *pool_;
  std::unique_lock<std::mutex> lock(q.mu);
  if (q.next_consume >= q.limit) q.limit = q.next_consume + 1;  // past the announced count
  q.cv.notify_all();
  q.cv.wait(lock, [&] { return q.error || q.ready.count(q.next_consume); });
  if (q.error) std::rethrow_exception(q.error);
  auto node = q.ready.extract(q.next_consume);
  ++q.next_consume;
  q.cv.notify_all();
  lock.unlock();
  std::copy(node.mapped().x.begin(), node.mapped().x.end(), x);
  labels = std::move(node.mapped().labels);
}

}  // namespace fsl
