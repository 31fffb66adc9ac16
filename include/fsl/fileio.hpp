// Small file helpers shared by every writer: atomic replace, whole-file read, directory walks.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fsl {

namespace fs = std::filesystem;

// Writes through `write(tmp_path)` into a temporary file next to `path`, fsyncs it, then renames
// it over `path`. If `write` throws (or the disk is full), `path` is left as it was and the
// temporary file is removed.
void atomic_write(const fs::path& path, const std::function<void(const fs::path& tmp)>& write);

// atomic_write of a string.
void atomic_write_text(const fs::path& path, const std::string& text);

// Reads a whole file; throws Error naming the file if it cannot.
std::string read_text(const fs::path& path);

// Every regular file under `dir` (recursive) whose extension (lower-case, with dot) is in `exts`,
// sorted by path. Throws Error if `dir` does not exist or is not a directory.
std::vector<fs::path> list_files(const fs::path& dir, const std::vector<std::string>& exts);

// Audio extensions fsl reads: .wav .flac .ogg (any case).
const std::vector<std::string>& audio_extensions();

}  // namespace fsl
