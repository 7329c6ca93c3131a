#include "trafficid/npy.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <unistd.h>

#include "trafficid/error.hpp"
#include "trafficid/files.hpp"

namespace trafficid {

namespace {
// The header is padded to this size so the final row count always fits where the first one was.
constexpr std::size_t header_size = 128;
constexpr char magic[] = "\x93NUMPY";

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i)
    text += fmt::format("{}{}", shape[i], shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  return text + ")";
}

// Why a write failed; a full disk says so, whichever write (the file's creation, its header, a
// row) met it first: with several writer threads that is a matter of timing.
std::string write_failure(const char* what, const std::filesystem::path& path, int error) {
  const bool full = error == ENOSPC || error == EDQUOT;
  return fmt::format("{} {}: {}{}", what, path.string(), std::strerror(error), full ? " (is the disk full?)" : "");
}
}  // namespace

NpyWriter::NpyWriter(std::filesystem::path path, std::string descr, std::size_t item_size,
                     std::vector<std::int64_t> row_shape)
    : path_(std::move(path)), descr_(std::move(descr)), item_size_(item_size), row_shape_(std::move(row_shape)) {
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw Error(write_failure("cannot write", path_, errno));
  std::setvbuf(file_, nullptr, _IONBF, 0);  // buffered here: one fwrite per 256 KB, not one per row
  buffer_.reserve(256 << 10);
  write_header();
}

NpyWriter::~NpyWriter() {
  if (file_) std::fclose(file_);
}

void NpyWriter::write_header() {
  std::vector<std::int64_t> shape;
  std::uint64_t per_row = 1;
  for (auto d : row_shape_) per_row *= static_cast<std::uint64_t>(d);
  shape.push_back(static_cast<std::int64_t>(per_row ? items_ / per_row : 0));
  shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_, shape_text(shape));
  std::string header(magic, 6);
  header += '\x01';
  header += '\x00';
  const std::size_t text = header_size - 10;
  if (dict.size() + 1 > text) throw Error(fmt::format("{}: array shape too long for a .npy header", path_.string()));
  dict.append(text - 1 - dict.size(), ' ');
  dict += '\n';
  header += static_cast<char>(text & 0xff);
  header += static_cast<char>(text >> 8);
  header += dict;
  if (std::fseek(file_, 0, SEEK_SET) != 0 || std::fwrite(header.data(), 1, header.size(), file_) != header.size())
    throw Error(write_failure("cannot write", path_, errno));
}

void NpyWriter::append(std::span<const std::uint8_t> bytes) {
  if (buffer_.size() + bytes.size() > buffer_.capacity()) {
    flush_buffer();
    if (bytes.size() >= buffer_.capacity()) {
      write_out(bytes.data(), bytes.size());
      items_ += bytes.size() / item_size_;
      return;
    }
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  items_ += bytes.size() / item_size_;
}

void NpyWriter::write_out(const void* data, std::size_t size) {
  if (size && std::fwrite(data, 1, size, file_) != size) throw Error(write_failure("cannot write", path_, errno));
}

void NpyWriter::flush_buffer() {
  write_out(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void NpyWriter::close(bool sync) {
  if (!file_) return;
  flush_buffer();
  write_header();
  bool ok = std::fflush(file_) == 0;
  if (ok && sync) ok = ::fsync(::fileno(file_)) == 0;
  int error = errno;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok) throw Error(write_failure("cannot finish", path_, error));
}

NpyHeader read_npy_header(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  char start[10];
  in.read(start, 10);
  if (in.gcount() != 10 || std::memcmp(start, magic, 6) != 0)
    throw Error(fmt::format("{}: not a NumPy .npy file (no \\x93NUMPY magic at byte 0)", path.string()));
  const int major = static_cast<unsigned char>(start[6]);
  std::uint64_t length = static_cast<unsigned char>(start[8]) | (static_cast<unsigned char>(start[9]) << 8);
  std::uint64_t offset = 10;
  if (major >= 2) {
    char more[2];
    in.read(more, 2);
    length |= (static_cast<std::uint64_t>(static_cast<unsigned char>(more[0])) << 16) |
              (static_cast<std::uint64_t>(static_cast<unsigned char>(more[1])) << 24);
    offset = 12;
  }
  std::error_code ec;
  const std::uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (!ec && offset + length > file_bytes)  // before allocating what the header claims (up to 4 GiB)
    throw Error(fmt::format("{}: .npy header of {} bytes in a file of {} (file truncated?)", path.string(), length,
                            file_bytes));
  std::string dict(length, '\0');
  in.read(dict.data(), static_cast<std::streamsize>(length));
  if (static_cast<std::uint64_t>(in.gcount()) != length)
    throw Error(fmt::format("{}: .npy header cut short (file truncated?)", path.string()));
  NpyHeader h;
  h.data_offset = offset + length;
  auto bad = [&](const std::string& what) {
    return Error(fmt::format("{}: .npy header {} (the file is damaged or not written by NumPy or trafficid)",
                             path.string(), what));
  };
  auto value_of = [&](const std::string& key) -> std::string {
    auto at = dict.find("'" + key + "'");
    if (at == std::string::npos) throw bad(fmt::format("has no '{}'", key));
    at = dict.find(':', at);
    if (at == std::string::npos) throw bad(fmt::format("has no value for '{}'", key));
    ++at;
    while (at < dict.size() && dict[at] == ' ') ++at;
    if (at >= dict.size()) throw bad(fmt::format("has no value for '{}'", key));
    auto end = dict[at] == '(' ? dict.find(')', at) : dict.find_first_of(",}", at);
    if (end == std::string::npos) throw bad(fmt::format("has an unterminated value for '{}'", key));
    if (dict[at] == '(') ++end;
    return dict.substr(at, end - at);
  };
  h.descr = value_of("descr");
  if (h.descr.size() >= 2 && h.descr.front() == '\'') h.descr = h.descr.substr(1, h.descr.size() - 2);
  h.fortran_order = value_of("fortran_order") == "True";
  const std::string shape = value_of("shape");
  for (std::size_t i = 1; i < shape.size();) {
    while (i < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i >= shape.size() || shape[i] == ')') break;
    std::size_t used = 0;
    long long dimension = -1;
    try {
      dimension = std::stoll(shape.substr(i), &used);
    } catch (const std::exception&) {
      throw bad(fmt::format("has a shape that is not a tuple of integers: {}", shape));
    }
    if (dimension < 0) throw bad(fmt::format("has a negative dimension in its shape {}", shape));
    h.shape.push_back(dimension);
    i += used;
  }
  std::uint64_t items = 1;
  for (auto d : h.shape)
    if (d != 0 && items > std::numeric_limits<std::uint64_t>::max() / 8 / static_cast<std::uint64_t>(d))
      throw bad(fmt::format("has a shape {} of more items than any file holds", shape));
    else items *= static_cast<std::uint64_t>(d);
  return h;
}

template <class T>
std::vector<T> read_npy(const std::filesystem::path& path) {
  NpyHeader h = read_npy_header(path);
  if (h.descr != npy_descr<T>())
    throw Error(fmt::format("{}: element type {} where {} was expected", path.string(), h.descr, npy_descr<T>()));
  // The data must be in the file before it is allocated: a damaged header cannot ask for terabytes.
  std::error_code ec;
  const std::uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (!ec && h.items() * sizeof(T) > file_bytes - std::min<std::uint64_t>(file_bytes, h.data_offset))
    throw Error(fmt::format("{}: {} of {} bytes of data (file truncated?)", path.string(),
                            file_bytes - std::min<std::uint64_t>(file_bytes, h.data_offset), h.items() * sizeof(T)));
  std::vector<T> values(h.items());
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(h.data_offset));
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(T)));
  if (static_cast<std::size_t>(in.gcount()) != values.size() * sizeof(T))
    throw Error(fmt::format("{}: {} of {} bytes of data (file truncated?)", path.string(), in.gcount(),
                            values.size() * sizeof(T)));
  return values;
}

template std::vector<std::uint8_t> read_npy(const std::filesystem::path&);
template std::vector<std::uint16_t> read_npy(const std::filesystem::path&);
template std::vector<std::uint32_t> read_npy(const std::filesystem::path&);
template std::vector<std::uint64_t> read_npy(const std::filesystem::path&);
template std::vector<std::int64_t> read_npy(const std::filesystem::path&);
template std::vector<float> read_npy(const std::filesystem::path&);

}  // namespace trafficid
