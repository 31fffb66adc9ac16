#include "fsl/audio.hpp"

#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "fsl/error.hpp"
#include "fsl/fileio.hpp"

namespace fsl {

namespace {
// libsndfile reads a WAV whose data chunk is cut short without complaint (it shortens the length
// to what is there) but logs "data : <declared> (should be <actual>)". Streaming writers that
// never patch the size leave 0 or 0xFFFFFFFF there; those are not truncation.
void check_data_chunk_complete(SNDFILE* f, const std::string& path) {
  char log[8192] = {0};
  sf_command(f, SFC_GET_LOG_INFO, log, sizeof(log) - 1);
  const char* line = std::strstr(log, "\ndata :");
  if (!line) return;
  long long declared = 0, actual = 0;
  if (std::sscanf(line, "\ndata : %lld (should be %lld)", &declared, &actual) != 2) return;
  if (declared > actual && declared != 0 && declared != 0xFFFFFFFFLL)
    fail(path, ": truncated audio: data chunk declares ", declared, " bytes, file holds ", actual);
}

struct SndFile {
  SNDFILE* f = nullptr;
  SF_INFO info{};
  SndFile(const std::string& path, int mode) {
    f = sf_open(path.c_str(), mode, &info);
    if (!f) fail(path, ": cannot decode audio: ", sf_strerror(nullptr));
  }
  ~SndFile() {
    if (f) sf_close(f);
  }
};
}  // namespace

AudioInfo audio_info(const std::string& path) {
  SndFile s(path, SFM_READ);
  return {s.info.samplerate, s.info.channels, static_cast<long long>(s.info.frames)};
}

std::vector<float> resample(const std::vector<float>& x, int from_sr, int to_sr) {
  if (from_sr == to_sr || x.empty()) return x;
  size_t out_len = static_cast<size_t>(std::ceil(double(x.size()) * to_sr / from_sr));
  std::vector<float> y(out_len);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  size_t idone = 0, odone = 0;
  soxr_error_t err = soxr_oneshot(from_sr, to_sr, 1, x.data(), x.size(), &idone, y.data(),
                                  out_len, &odone, &io, &q, nullptr);
  if (err) fail("resample ", from_sr, " -> ", to_sr, " Hz failed: ", err);
  // librosa fixes the resampled length to ceil(n * to / from), zero-padding soxr's output.
  y.resize(out_len, 0.0f);
  return y;
}

std::vector<float> load_audio(const std::string& path, int target_sr, bool peak_normalise) {
  SndFile s(path, SFM_READ);
  const int ch = s.info.channels;
  if (s.info.samplerate <= 0 || ch <= 0) fail(path, ": invalid audio header");
  if (s.info.frames <= 0) fail(path, ": audio has zero length");
  check_data_chunk_complete(s.f, path);
  // Decode in blocks and mix down as we go: only the mono signal is held whole.
  std::vector<float> mono;
  mono.reserve(static_cast<size_t>(s.info.frames));
  const sf_count_t block = 65536;
  std::vector<float> buf(static_cast<size_t>(block) * ch);
  for (;;) {
    sf_count_t got = sf_readf_float(s.f, buf.data(), block);
    if (got <= 0) break;
    for (sf_count_t i = 0; i < got; ++i) {
      float acc = 0;
      for (int c = 0; c < ch; ++c) acc += buf[size_t(i) * ch + c];
      mono.push_back(acc / ch);
    }
  }
  if (sf_error(s.f) != SF_ERR_NO_ERROR) fail(path, ": decode error: ", sf_strerror(s.f));
  if (mono.empty()) fail(path, ": no audio samples could be decoded (truncated or empty file)");
  if (mono.size() < static_cast<size_t>(s.info.frames) / 2)
    fail(path, ": truncated audio: header says ", s.info.frames, " samples, decoded ", mono.size());
  for (float v : mono)
    if (!std::isfinite(v)) fail(path, ": audio contains NaN or Inf samples");
  std::vector<float> y =
      target_sr > 0 && target_sr != s.info.samplerate
          ? resample(mono, s.info.samplerate, target_sr)
          : std::move(mono);
  if (peak_normalise) {
    float peak = 0;
    for (float v : y) peak = std::max(peak, std::abs(v));
    if (peak > 0)
      for (float& v : y) v /= peak;
  }
  return y;
}

void write_wav(const std::string& path, const std::vector<float>& x, int sample_rate, bool pcm16) {
  atomic_write(path, [&](const fs::path& tmp) {
    SF_INFO info{};
    info.samplerate = sample_rate;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | (pcm16 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT);
    SNDFILE* f = sf_open(tmp.c_str(), SFM_WRITE, &info);
    if (!f) fail(path, ": cannot write audio: ", sf_strerror(nullptr));
    std::vector<float> clipped(x.size());
    for (size_t i = 0; i < x.size(); ++i) clipped[i] = std::clamp(x[i], -1.0f, 1.0f);
    sf_count_t n = sf_writef_float(f, clipped.data(), static_cast<sf_count_t>(clipped.size()));
    sf_close(f);
    if (n != static_cast<sf_count_t>(clipped.size())) fail(path, ": write failed (disk full?)");
  });
}

}  // namespace fsl
