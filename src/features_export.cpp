// fsl_features export: audio -> `<stem>_<type>.npy` on worker threads, then feature_stats.json.
#include <cblas.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <thread>

#include "fsl/audio.hpp"
#include "fsl/error.hpp"
#include "fsl/features.hpp"
#include "fsl/fileio.hpp"
#include "fsl/frontend.hpp"
#include "fsl/npy.hpp"
#include "fsl/progress.hpp"

namespace fsl {

std::string feature_path(const std::string& audio_path, const std::string& type) {
  fs::path p(audio_path);
  return (p.parent_path() / (p.stem().string() + "_" + type + ".npy")).string();
}

std::vector<std::string> split_names(const std::string& split) {
  if (split == "all") return {"train", "val", "test"};
  if (split == "train" || split == "val" || split == "test") return {split};
  fail("--split: unknown split '", split, "' (train, val, test or all)");
}

std::string split_dir(const Config& c, const std::string& split) {
  const std::string& dir = split == "train" ? c.path.train_dir
                           : split == "val" ? c.path.eval_dir
                                            : c.path.test_dir;
  if (dir.empty() || dir == "null") return "";
  return c.resolve(dir);
}

namespace {

struct Job {
  std::string audio;
  double hours = 0;
};

// Audio files of a split; "" dir: skipped (noted) for --split all, an Error when named alone.
std::vector<Job> split_jobs(const Config& c, const std::string& split, bool named_alone) {
  const std::string dir = split_dir(c, split);
  const char* key = split == "train" ? "path.train_dir"
                    : split == "val" ? "path.eval_dir"
                                     : "path.test_dir";
  if (dir.empty()) {
    if (named_alone) fail("split '", split, "': ", key, " is not set in the config");
    std::cerr << "note: " << key << " is not set: skipping the " << split << " split\n";
    return {};
  }
  if (!fs::is_directory(dir)) fail(key, ": directory ", dir, " does not exist");
  std::vector<Job> jobs;
  for (const auto& p : list_files(dir, audio_extensions())) {
    Job j{p.string()};
    try {
      j.hours = audio_info(j.audio).seconds() / 3600.0;
    } catch (const Error&) {
      // counted as zero hours; the export reports the file
    }
    jobs.push_back(j);
  }
  return jobs;
}

// An existing feature file is kept only if it reads as a whole NPY of n_mels columns: a
// truncated or corrupt one (a crash of an older writer, a bad copy) is exported again.
bool feature_file_ok(const std::string& path, int n_mels) {
  if (!fs::exists(path)) return false;
  try {
    return NpyMap(path).cols() == size_t(n_mels);
  } catch (const Error&) {
    return false;
  }
}

bool all_exist(const std::string& audio, const std::vector<std::string>& types, int n_mels) {
  for (const auto& t : types)
    if (!feature_file_ok(feature_path(audio, t), n_mels)) return false;
  return true;
}

}  // namespace

ExportSummary export_features(const Config& c, const std::string& split, bool force) {
  const auto splits = split_names(split);
  const auto types = c.features.types();
  std::vector<Job> jobs;
  bool train_included = false;
  for (const auto& s : splits) {
    auto js = split_jobs(c, s, splits.size() == 1);
    if (s == "train" && !split_dir(c, s).empty()) train_included = true;
    jobs.insert(jobs.end(), js.begin(), js.end());
  }
  double hours = 0;
  for (const auto& j : jobs) hours += j.hours;

  // Files run in parallel, one per worker: keep OpenBLAS itself single-threaded.
  openblas_set_num_threads(1);
  const FrontendParams params = FrontendParams::from(c.features);
  const int n_workers =
      std::max(1, std::min<int>(c.runtime.num_workers, static_cast<int>(jobs.size())));
  Progress progress("features", static_cast<long>(jobs.size()), hours, "h audio");
  std::atomic<size_t> next{0};
  std::atomic<long> written{0}, skipped{0}, failed{0};
  std::mutex err_mu;
  // runtime.device: cuda = the GPU or an error, auto = the GPU when present, cpu = FFTW. One GPU
  // front end serves all workers (behind shared_mu); a CPU front end is made per worker.
  const std::string device = resolve_device(c.runtime, Stage::features);
  std::unique_ptr<FeatureExtractor> shared;
  std::mutex shared_mu;
  if (device == "cuda" && !jobs.empty()) shared = make_feature_extractor(device, params);
  auto worker = [&] {
    std::unique_ptr<FeatureExtractor> own;
    for (size_t i; (i = next++) < jobs.size();) {
      const Job& job = jobs[i];
      try {
        if (!force && all_exist(job.audio, types, params.n_mels)) {
          ++skipped;
        } else {
          auto x = load_audio(job.audio, params.sr);
          // The outputs are allocated and first touched here, in parallel with the other
          // workers, so a shared front end's critical section holds only its own work.
          std::map<std::string, std::vector<float>> feats;
          const size_t size = (1 + x.size() / size_t(params.hop)) * size_t(params.n_mels);
          for (const auto& t : types) feats[t].assign(size, 0.0f);
          auto out = [&](const char* t) { return feats.count(t) ? feats[t].data() : nullptr; };
          if (!shared && !own) own = make_feature_extractor("cpu", params);
          std::unique_lock<std::mutex> lock(shared_mu, std::defer_lock);
          if (shared) lock.lock();
          (shared ? *shared : *own)
              .compute_into(x.data(), x.size(), types, out("logmel"), out("pcen"));
          if (lock.owns_lock()) lock.unlock();
          const size_t frames = 1 + x.size() / size_t(params.hop);
          for (const auto& t : types) {
            const auto path = feature_path(job.audio, t);
            if (force || !feature_file_ok(path, params.n_mels))
              npy_write(path, feats[t].data(), {frames, size_t(params.n_mels)});
          }
          ++written;
        }
      } catch (const std::exception& e) {
        ++failed;
        std::lock_guard<std::mutex> lock(err_mu);
        std::string what = e.what();
        if (what.find(job.audio) == std::string::npos) what = job.audio + ": " + what;
        std::cerr << "error: " << what << "\n";
      }
      progress.advance(1, job.hours);
    }
  };
  std::vector<std::thread> pool;
  for (int w = 0; w < n_workers; ++w) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  progress.finish();

  if (train_included) {
    const std::string train = split_dir(c, "train");
    FeatureStats stats = compute_feature_stats(train, types, params.n_mels);
    // Types exported earlier but not in this run keep their entry: exporting pcen alone must
    // not drop the logmel statistics a logmel encoder normalises with. A corrupt old file is
    // simply replaced.
    if (fs::exists(feature_stats_path(train))) {
      try {
        for (const auto& [type, stat] : read_feature_stats(train)) stats.emplace(type, stat);
      } catch (const Error&) {
      }
    }
    write_feature_stats(train, stats);
  }
  return {written.load(), skipped.load(), failed.load()};
}

}  // namespace fsl
