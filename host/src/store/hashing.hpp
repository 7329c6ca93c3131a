// Digests of files and texts.
// - content_hash_file: what tells whether a capture changed since it was labelled (the labels
//   database keeps it per file). XXH3-128 (libxxhash) over the file mapped into memory: about
//   0.05 s per GB here against SHA-256's 0.5-0.7 s, which matters because it runs on a core the
//   labelling workers would otherwise have. A change detector, not a signature; the value names its
//   algorithm ("xxh3-128:<32 hex digits>").
//   Also a dataset's inputs in its manifest (`xxh128sum FILE` prints the same digits).
// - sha256_file / sha256_text (libgcrypt): identities of configurations written into manifests and
//   folder names, where anyone can check them with sha256sum; the inputs of datasets built before
//   their manifests used XXH3.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace trafficid::host {

// Initialises libgcrypt; main() calls it before any thread starts, so that nDPI, which also
// initialises it when it sets up a detection module, never races a hashing thread.
void initialise_crypto();
std::string content_hash_file(const std::filesystem::path& file);
std::string sha256_file(const std::filesystem::path& file);
std::string sha256_text(std::string_view text);
// Whether `digest` is SHA-256's 64 hex digits (a dataset input hashed before XXH3).
bool is_sha256_digest(const std::string& digest);

}  // namespace trafficid::host
