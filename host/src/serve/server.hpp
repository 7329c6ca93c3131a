// `trafficid serve`: a local web application over the workspace (experiments/, runs/, studies/):
// list runs and studies, start, stop and resume them, watch their events live, read their reports,
// validate experiments, predict with trained models, browse label databases and datasets.
// Every page action is a JSON endpoint under /api/ (README, "The web application"), usable from
// curl with `Authorization: Bearer TOKEN`. The HTTP server is Debian's cpp-httplib; the page is
// static files compiled into the binary (no build step, nothing fetched at run time).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace trafficid::host {

struct ServeOptions {
  std::filesystem::path workspace = ".";  // experiments/, runs/ ...; paths of requests stay inside it
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: any free port
  std::string token;                      // empty: a random one
  std::vector<std::string> plugin_paths;  // --plugin-path, for the runs it starts
  int threads = 64;                       // request threads: each open event stream holds one
  std::filesystem::path program;          // the trafficid executable studies run in (empty: this one)
};

class Server {
 public:
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int bind();     // binds the socket; the port (Error when it cannot)
  void listen();  // serves until stop(); runs it started are stopped (resumable) and waited for
  void stop();
  const std::string& token() const;
  std::string url() const;  // http://HOST:PORT/?token=TOKEN

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trafficid::host
