// Audio decode + mono + soxr HQ resample + peak normalisation, against librosa.load (golden files
// from tools/golden/make_frontend_golden.py), and the errors on bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "fsl/audio.hpp"
#include "fsl/error.hpp"
#include "fsl/frontend.hpp"
#include "fsl/frontend_math.hpp"
#include "fsl/npy.hpp"
#include "testutil.hpp"

using fsl::test::relative_frobenius;

namespace {

// The message of the Error `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const fsl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Audio, MatchesLibrosaLoadForWavFlacOgg) {
  for (std::string name :
       {"audio_stereo44100.wav", "audio_mono16000.flac", "audio_mono16000.ogg"}) {
    SCOPED_TRACE(name);
    auto path = fsl::test::data_path("frontend/" + name).string();
    std::string stem = name.substr(0, name.rfind('.')), ext = name.substr(name.rfind('.') + 1);
    auto want = fsl::npy_read(
        fsl::test::data_path("frontend/" + stem + "_" + ext + "_load22050.npy").string());
    auto got = fsl::load_audio(path, 22050);
    // librosa: length = ceil(n * 22050 / sr) (soxr output fixed to that length).
    auto info = fsl::audio_info(path);
    ASSERT_EQ(got.size(), size_t(std::ceil(double(info.frames) * 22050 / info.sample_rate)));
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LE(relative_frobenius(got, want), 1e-4);
    float peak = 0;
    for (float v : got) peak = std::max(peak, std::abs(v));
    EXPECT_FLOAT_EQ(peak, 1.0f);
  }
}

TEST(Audio, ResampledLengthsFollowLibrosaConvention) {
  for (int n : {1, 2, 3, 7, 1000, 44099, 44100, 44101}) {
    std::vector<float> x(n, 0.25f);
    EXPECT_EQ(fsl::resample(x, 44100, 22050).size(), size_t(std::ceil(n * 0.5))) << n;
    EXPECT_EQ(fsl::resample(x, 16000, 22050).size(), size_t(std::ceil(n * 22050.0 / 16000))) << n;
    EXPECT_EQ(fsl::resample(x, 48000, 22050).size(), size_t(std::ceil(n * 22050.0 / 48000))) << n;
  }
}

TEST(Audio, ResampledSineLandsInTheRightMelBand) {
  fsl::test::TempDir dir;
  const double f0 = 1500;
  std::vector<float> x(48000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f * float(std::sin(2 * M_PI * f0 * i / 48000));
  auto path = (dir / "sine.wav").string();
  fsl::write_wav(path, x, 48000);
  auto y = fsl::load_audio(path, 22050);
  ASSERT_EQ(y.size(), 22050u);
  fsl::FrontendParams p;
  fsl::Frontend fe(p);
  auto mel = fe.compute(y.data(), y.size(), {"logmel"})["logmel"];
  const double mlo = fsl::fm::hz_to_mel_slaney(p.fmin), mhi = fsl::fm::hz_to_mel_slaney(p.fmax);
  const double band = (fsl::fm::hz_to_mel_slaney(f0) - mlo) / (mhi - mlo) * (p.n_mels + 1) - 1;
  const size_t t = fe.num_frames(y.size()) / 2;
  int argmax = 0;
  for (int m = 1; m < p.n_mels; ++m)
    if (mel[t * p.n_mels + m] > mel[t * p.n_mels + argmax]) argmax = m;
  EXPECT_NEAR(argmax, band, 1.0);
}

TEST(Audio, BadFilesGiveAnErrorNamingTheFile) {
  fsl::test::TempDir dir;
  auto missing = (dir / "missing.wav").string();
  EXPECT_NE(error_of([&] { fsl::load_audio(missing, 22050); }).find(missing), std::string::npos);

  auto empty = (dir / "empty.wav").string();
  std::ofstream(empty).close();
  EXPECT_NE(error_of([&] { fsl::load_audio(empty, 22050); }).find(empty), std::string::npos);

  auto junk = (dir / "junk.flac").string();
  std::ofstream(junk) << "this is not audio at all, just text";
  EXPECT_NE(error_of([&] { fsl::load_audio(junk, 22050); }).find(junk), std::string::npos);

  auto zero_len = (dir / "zero.wav").string();
  fsl::write_wav(zero_len, {}, 22050);
  EXPECT_NE(error_of([&] { fsl::load_audio(zero_len, 22050); }).find(zero_len), std::string::npos);

  // A WAV cut in the middle of its header.
  auto good = (dir / "good.wav").string();
  fsl::write_wav(good, std::vector<float>(22050, 0.1f), 22050);
  auto cut = (dir / "cut.wav").string();
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, 20);
  EXPECT_NE(error_of([&] { fsl::load_audio(cut, 22050); }).find(cut), std::string::npos);
  EXPECT_EQ(error_of([&] { fsl::load_audio(good, 22050); }), "");
}

TEST(Audio, TruncatedDataIsAnErrorNamingTheFile) {
  // Header says 1 s, only a tenth of the samples is there.
  fsl::test::TempDir dir;
  auto good = (dir / "long.wav").string();
  fsl::write_wav(good, std::vector<float>(22050, 0.1f), 22050);
  auto cut = (dir / "truncated.wav").string();
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, 44 + 2 * 2205);
  EXPECT_NE(error_of([&] { fsl::load_audio(cut, 22050); }).find(cut), std::string::npos);
}
