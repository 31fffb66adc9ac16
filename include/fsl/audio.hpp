// Audio in and out: decode anything libsndfile reads (wav, flac, ogg, ...), mix to mono,
// resample with libsoxr (HQ, as librosa), peak-normalise. Writes 16-bit or float WAV.
#pragma once
#include <string>
#include <vector>

namespace fsl {

struct AudioInfo {
  int sample_rate = 0;
  int channels = 0;
  long long frames = 0;  // samples per channel
  double seconds() const { return sample_rate > 0 ? double(frames) / sample_rate : 0.0; }
};

// Header only (fast); throws Error naming the file if it cannot be opened.
AudioInfo audio_info(const std::string& path);

// Decodes `path`, mixes to mono, resamples to `target_sr` (<= 0: keep the file's rate), and
// divides by max |x| when `peak_normalise` (a silent file stays zero). Throws Error naming the
// file when it is unreadable, truncated, empty or has zero length.
// Memory: the mono signal plus one resampled copy, decoded in blocks.
std::vector<float> load_audio(const std::string& path, int target_sr, bool peak_normalise = true);

// Resamples a mono signal with soxr HQ. out length = ceil(in * to / from) as soxr produces.
std::vector<float> resample(const std::vector<float>& x, int from_sr, int to_sr);

// Writes a mono WAV atomically (PCM 16 when `pcm16`, else float). Samples are clipped to [-1, 1].
void write_wav(const std::string& path, const std::vector<float>& x, int sample_rate,
               bool pcm16 = true);

}  // namespace fsl
