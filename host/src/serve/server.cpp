#include "serve/server.hpp"

#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <httplib.h>
#include <random>

#include "config/experiment.hpp"
#include "runtime/plugin_registry.hpp"
#include "serve/compare_api.hpp"
#include "serve/data_api.hpp"
#include "serve/event_stream.hpp"
#include "serve/experiment_api.hpp"
#include "serve/live_predict.hpp"
#include "serve/predict_api.hpp"
#include "serve/run_board.hpp"
#include "serve/study_board.hpp"
#include "serve/web_assets.hpp"
#include "serve/workspace_files.hpp"
#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

std::string random_token() {
  std::random_device device;  // the kernel's randomness
  std::string token;
  for (int i = 0; i < 4; ++i) token += fmt::format("{:08x}", device());
  return token;
}

void reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void fail(httplib::Response& res, int status, const std::string& message) { reply(res, status, {{"error", message}}); }

constexpr std::size_t json_body_limit = std::size_t{1} << 20;
constexpr std::size_t upload_limit = std::size_t{256} << 20;

// The request's JSON body, or nullopt after a 400 (413 over 1 MiB).
std::optional<Json> body_of(const httplib::Request& req, httplib::Response& res) {
  if (req.body.size() > json_body_limit) {
    fail(res, 413, "a JSON body of at most 1 MiB");
    return std::nullopt;
  }
  Json j = Json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    fail(res, 400, "the body must be a JSON object");
    return std::nullopt;
  }
  return j;
}

std::vector<std::string> overrides_of(const Json& body) {
  std::vector<std::string> out;
  if (body.contains("set") && body["set"].is_array())
    for (const auto& s : body["set"])
      if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

// DIR/NAME as the response, or a 404 saying `missing`.
void send_file(httplib::Response& res, const std::optional<fs::path>& dir, const char* name, const char* type,
               const char* missing) {
  std::ifstream in(dir ? *dir / name : fs::path());
  if (!dir || !in) return fail(res, 404, missing);
  res.set_content(std::string(std::istreambuf_iterator<char>(in), {}), type);
}

// What runs and studies share: GET `collection` lists them, POST `collection` starts one from an
// experiment of the workspace; under `item` (a pattern whose group is the id) its events as a
// stream, its report, stop, resume, then `more` (routes of its own), then its description (last:
// its pattern matches every path under it). `Board` is a RunBoard or a StudyBoard.
template <class Board>
void lifecycle_routes(httplib::Server& http, const std::string& collection, const std::string& item, Board& board,
                      const std::string& noun, const fs::path& workspace, const std::atomic<bool>& stopping,
                      const std::function<void()>& more = {}) {
  http.Get(collection, [&board](const httplib::Request&, httplib::Response& res) { reply(res, 200, board.list()); });
  http.Post(collection, [&board, workspace](const httplib::Request& req, httplib::Response& res) {
    const auto body = body_of(req, res);
    if (!body) return;
    const auto file = inside_workspace(workspace, body->value("experiment", ""));
    if (!file) return fail(res, 403, "experiment: a file inside the workspace, by its relative path");
    if (!fs::is_regular_file(*file)) return fail(res, 404, "no such experiment file");
    try {
      reply(res, 201, {{"id", board.start(*file, overrides_of(*body))}});
    } catch (const Error& e) {
      fail(res, 422, e.what());
    }
  });
  http.Get(item + "/events", [&board, noun, &stopping](const httplib::Request& req, httplib::Response& res) {
    const auto dir = board.folder(req.matches[1]);
    if (!dir) return fail(res, 404, "no such " + noun);
    stream_events(
        req, res, *dir, [&board, id = req.matches[1].str()] { return board.running(id); }, stopping);
  });
  http.Get(item + "/report", [&board, noun](const httplib::Request& req, httplib::Response& res) {
    send_file(res, board.folder(req.matches[1]), "report.html", "text/html; charset=utf-8",
              ("no report (yet) for this " + noun).c_str());
  });
  http.Post(item + "/stop", [&board, noun](const httplib::Request& req, httplib::Response& res) {
    if (!board.stop(req.matches[1])) return fail(res, 409, "not a " + noun + " this server is running");
    reply(res, 202, {{"id", req.matches[1]}, {"stopping", true}});
  });
  http.Post(item + "/resume", [&board](const httplib::Request& req, httplib::Response& res) {
    try {
      reply(res, 201, {{"id", board.resume(req.matches[1])}});
    } catch (const Error& e) {
      fail(res, 409, e.what());
    }
  });
  if (more) more();
  http.Get(item, [&board, noun](const httplib::Request& req, httplib::Response& res) {
    auto d = board.describe(req.matches[1]);
    if (!d) return fail(res, 404, "no such " + noun);
    reply(res, 200, *d);
  });
}

}  // namespace

struct Server::Impl {
  ServeOptions options;
  fs::path workspace;
  std::string token;
  PluginRegistry registry;
  std::unique_ptr<RunBoard> board;
  std::unique_ptr<LivePredictions> live;
  std::unique_ptr<StudyBoard> studies;
  httplib::Server http;
  int port = 0;
  std::atomic<bool> stopping{false};

  bool authorised(const httplib::Request& req, httplib::Response& res) const;
  bool same_origin(const httplib::Request& req) const;
  std::optional<fs::path> workspace_file(const std::string& relative) const;
  void routes();
  void run_routes();
  void experiment_routes();
  void predict_routes();
  void live_routes();
  void study_routes();
  void compare_routes();
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = std::move(options);
  if (!fs::is_directory(s.options.workspace))
    throw Error(fmt::format("{}: no such folder (--workspace)", s.options.workspace.string()));
  s.workspace = fs::weakly_canonical(fs::absolute(s.options.workspace));
  s.token = s.options.token.empty() ? random_token() : s.options.token;
  s.registry.load_directories(plugin_search_path(s.options.plugin_paths), true);
  s.board = std::make_unique<RunBoard>(s.workspace, s.options.plugin_paths, s.registry);
  s.live = std::make_unique<LivePredictions>(s.registry);
  const fs::path program = s.options.program.empty() ? fs::canonical("/proc/self/exe") : s.options.program;
  s.studies = std::make_unique<StudyBoard>(s.workspace, program, s.options.plugin_paths, s.registry);
  const int threads = std::max(8, s.options.threads);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  s.http.set_payload_max_length(upload_limit);  // captures to predict; JSON bodies are held to 1 MiB
  s.routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  Impl& s = *impl_;
  s.port = s.options.port == 0 ? s.http.bind_to_any_port(s.options.host)
                               : (s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (s.port < 0)
    throw Error(
        fmt::format("cannot listen on {}:{} (in use? --port 0 takes any free port)", s.options.host, s.options.port));
  return s.port;
}

void Server::listen() {
  impl_->http.listen_after_bind();
  impl_->live.reset();     // ends the live captures
  impl_->studies.reset();  // stops the studies it started, resumable
  impl_->board.reset();    // stops the runs it started, resumable, and waits for them
}

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

const std::string& Server::token() const { return impl_->token; }

std::string Server::url() const {
  return fmt::format("http://{}:{}/?token={}", impl_->options.host, impl_->port, impl_->token);
}

// The token: `?token=` (which also sets the cookie the page then sends), `Authorization: Bearer`,
// or the cookie. A POST must also come from the page's own origin (or name none: curl).
bool Server::Impl::authorised(const httplib::Request& req, httplib::Response& res) const {
  const std::string cookie = "trafficid_token=" + token;
  bool ok = req.get_param_value("token") == token;
  if (ok) res.set_header("Set-Cookie", cookie + "; Path=/; HttpOnly; SameSite=Strict");
  ok = ok || req.get_header_value("Authorization") == "Bearer " + token;
  if (!ok) {
    const std::string cookies = req.get_header_value("Cookie");
    for (std::size_t at = cookies.find(cookie); at != std::string::npos; at = cookies.find(cookie, at + 1)) {
      const std::size_t end = at + cookie.size();
      if ((at == 0 || cookies[at - 1] == ' ' || cookies[at - 1] == ';') &&
          (end == cookies.size() || cookies[end] == ';'))
        ok = true;
    }
  }
  return ok;
}

bool Server::Impl::same_origin(const httplib::Request& req) const {
  if (!req.has_header("Origin")) return true;
  const std::string origin = req.get_header_value("Origin");
  for (const char* host : {"127.0.0.1", "localhost"})
    if (origin == fmt::format("http://{}:{}", host, port)) return true;
  return origin == fmt::format("http://{}:{}", options.host, port);
}

// A path the client names, inside the workspace (links resolved), or nullopt.
std::optional<fs::path> Server::Impl::workspace_file(const std::string& relative) const {
  return inside_workspace(workspace, relative);
}

void Server::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) {
      fail(res, 401, "a token is needed: open the URL `trafficid serve` printed, or send Authorization: Bearer TOKEN");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method == "POST" && !same_origin(req)) {
      fail(res, 403, "a POST from another origin");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  for (const auto& asset : web_assets()) {
    const std::string path = std::string(asset.path) == "/index.html" ? "/" : asset.path;
    http.Get(path, [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.type);
      res.set_header("Cache-Control", "no-store");
    });
  }
  http.Get("/api/plugins", [this](const httplib::Request&, httplib::Response& res) {
    Json out = Json::array();
    for (const auto& p : registry.plugins()) out.push_back(plugin_json(*p, true));
    reply(res, 200, out);
  });
  // The Data page: labels databases (GET /api/labels, ?db=ID for one) and datasets.
  http.Get("/api/labels", [this](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("db")) return reply(res, 200, labels_databases(workspace));
    try {
      const auto db = labels_database(workspace, req.get_param_value("db"));
      if (!db) return fail(res, 404, "db: a labels database of the workspace (GET /api/labels)");
      reply(res, 200, *db);
    } catch (const Error& e) {
      fail(res, 422, e.what());
    }
  });
  http.Get("/api/datasets",
           [this](const httplib::Request&, httplib::Response& res) { reply(res, 200, datasets(workspace)); });
  run_routes();
  experiment_routes();
  predict_routes();
  compare_routes();
  study_routes();
}

void Server::Impl::run_routes() {
  lifecycle_routes(http, "/api/runs", R"(/api/runs/(.+))", *board, "run", workspace, stopping);
}

void Server::Impl::experiment_routes() {
  http.Get("/api/experiments", [this](const httplib::Request&, httplib::Response& res) {
    Json out = Json::array();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(workspace / "experiments", ec))
      if (e.path().extension() == ".toml") out.push_back(fs::relative(e.path(), workspace).generic_string());
    std::sort(out.begin(), out.end());
    reply(res, 200, out);
  });
  http.Get("/api/shipped",
           [](const httplib::Request&, httplib::Response& res) { reply(res, 200, shipped_experiments()); });
  // An experiment file's text (GET ?path=), or the page's text saved (POST {path, text, overwrite}).
  http.Get("/api/experiment", [this](const httplib::Request& req, httplib::Response& res) {
    const auto file = workspace_file(req.get_param_value("path"));
    if (!file) return fail(res, 403, "path: a file inside the workspace, by its relative path");
    std::ifstream in(*file);
    if (!in || !fs::is_regular_file(*file)) return fail(res, 404, "no such experiment file");
    res.set_content(std::string(std::istreambuf_iterator<char>(in), {}), "text/plain; charset=utf-8");
  });
  http.Post("/api/experiment", [this](const httplib::Request& req, httplib::Response& res) {
    const auto body = body_of(req, res);
    if (!body) return;
    if (!(*body)["text"].is_string()) return fail(res, 400, "text: the experiment's TOML");
    try {
      save_experiment(workspace, body->value("path", ""), (*body)["text"].get<std::string>(),
                      body->value("overwrite", false));
      reply(res, 201, {{"path", body->value("path", "")}});
    } catch (const Error& e) {
      fail(res, 409, e.what());
    }
  });
  // Checks an experiment file, or the text given for it (as typed in the page), with overrides;
  // POST /api/settings also lists what a form can set in it.
  for (const char* route : {"/api/validate", "/api/settings"}) {
    const bool settings = std::string(route) == "/api/settings";
    http.Post(route, [this, settings](const httplib::Request& req, httplib::Response& res) {
      const auto body = body_of(req, res);
      if (!body) return;
      const auto file = workspace_file(body->value("experiment", ""));
      if (!file) return fail(res, 403, "experiment: a file inside the workspace, by its relative path");
      ExperimentDraft draft{*file, std::nullopt, overrides_of(*body)};
      if (body->contains("text") && (*body)["text"].is_string()) draft.text = (*body)["text"].get<std::string>();
      try {
        const CheckedDraft checked = check_draft(draft, registry);
        Json out = {{"valid", checked.valid}, {"diagnostics", checked.diagnostics}};
        if (settings) out["settings"] = checked.experiment ? experiment_settings(*checked.experiment) : Json::array();
        reply(res, 200, out);
      } catch (const Error& e) {
        fail(res, 404, e.what());
      }
    });
  }
}

void Server::Impl::predict_routes() {
  // The capture is the body (a file's bytes, any size up to the limit), written under uploads/.
  http.Post("/api/predict",
            [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& content) {
              const auto dir = board->folder(req.get_param_value("run"));
              if (!dir) return fail(res, 404, "run: the id of a run of the workspace (GET /api/runs)");
              fs::path upload;
              try {
                upload = receive_upload(workspace / "uploads", req.get_param_value("name"), content);
                reply(res, 200, predict_upload(*dir, req.get_param_value("model"), upload, registry));
              } catch (const Error& e) {
                fail(res, 422, e.what());
              }
            });
  live_routes();
}

// Live prediction on an interface: POST /api/predictions starts one, its rows stream as flows end.
void Server::Impl::live_routes() {
  http.Get("/api/interfaces",
           [](const httplib::Request&, httplib::Response& res) { reply(res, 200, network_interfaces()); });
  http.Get("/api/predictions",
           [this](const httplib::Request&, httplib::Response& res) { reply(res, 200, live->list()); });
  http.Post("/api/predictions", [this](const httplib::Request& req, httplib::Response& res) {
    const auto body = body_of(req, res);
    if (!body) return;
    LivePredictRequest request;
    request.run = body->value("run", "");
    const auto dir = board->folder(request.run);
    if (!dir) return fail(res, 404, "run: the id of a run of the workspace (GET /api/runs)");
    request.run_dir = *dir;
    try {
      request.model = body->value("model", "");
      request.interface = body->value("interface", "");
      request.duration = body->value("duration", 0.0);
      if (body->contains("idle_timeout") && !(*body)["idle_timeout"].is_null())
        request.idle_timeout = (*body)["idle_timeout"].get<double>();
    } catch (const Json::exception&) {
      return fail(res, 400, "run, model, interface: strings; duration, idle_timeout: seconds");
    }
    if (request.duration < 0 || (request.idle_timeout && *request.idle_timeout <= 0))
      return fail(res, 400, "duration: 0 (until stopped) or more seconds; idle_timeout: more than 0 seconds");
    try {
      reply(res, 201, {{"id", live->start(request)}});
    } catch (const Error& e) {
      fail(res, 422, e.what());
    }
  });
  http.Get(R"(/api/predictions/([A-Za-z0-9\-]+)/events)", [this](const httplib::Request& req, httplib::Response& res) {
    if (!live->stream(req, res, req.matches[1], stopping)) fail(res, 404, "no such prediction");
  });
  http.Get(R"(/api/predictions/([A-Za-z0-9\-]+)/csv)", [this](const httplib::Request& req, httplib::Response& res) {
    const auto csv = live->csv(req.matches[1]);
    if (!csv) return fail(res, 404, "no such prediction");
    res.set_header("Content-Disposition", fmt::format("attachment; filename=\"{}.csv\"", req.matches[1].str()));
    res.set_content(*csv, "text/csv; charset=utf-8");
  });
  http.Post(R"(/api/predictions/([A-Za-z0-9\-]+)/stop)", [this](const httplib::Request& req, httplib::Response& res) {
    if (!live->stop(req.matches[1])) return fail(res, 409, "not a live prediction that is capturing");
    reply(res, 202, {{"id", req.matches[1]}, {"stopping", true}});
  });
  http.Get(R"(/api/predictions/([A-Za-z0-9\-]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const auto d = live->describe(req.matches[1]);
    if (!d) return fail(res, 404, "no such prediction");
    reply(res, 200, *d);
  });
}

// Tuning studies: listed, described trial by trial, started as `trafficid tune` processes, stopped,
// resumed; their events streamed; their best configuration run.
void Server::Impl::study_routes() {
  lifecycle_routes(http, "/api/studies", R"(/api/(studies/.+))", *studies, "study", workspace, stopping, [this] {
    http.Get(R"(/api/(studies/.+)/best.toml)", [this](const httplib::Request& req, httplib::Response& res) {
      send_file(res, studies->folder(req.matches[1]), "best.toml", "text/plain; charset=utf-8",
                "no best configuration (yet) for this study");
    });
    // A run of the study's best configuration (best.toml), like any run started here.
    http.Post(R"(/api/(studies/.+)/run-best)", [this](const httplib::Request& req, httplib::Response& res) {
      const auto dir = studies->folder(req.matches[1]);
      if (!dir) return fail(res, 404, "no such study");
      if (!fs::is_regular_file(*dir / "best.toml")) return fail(res, 409, "the study has no best configuration yet");
      try {
        reply(res, 201, {{"id", board->start(*dir / "best.toml", {})}});
      } catch (const Error& e) {
        fail(res, 422, e.what());
      }
    });
  });
}

// Runs side by side: GET /api/compare?run=ID&run=ID[&format=json|csv|html].
void Server::Impl::compare_routes() {
  http.Get("/api/compare", [this](const httplib::Request& req, httplib::Response& res) {
    std::vector<fs::path> dirs;
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < req.get_param_value_count("run"); ++i) {
      const std::string id = req.get_param_value("run", i);
      const auto dir = board->folder(id);
      if (!dir) return fail(res, 404, "no such run: " + id);
      dirs.push_back(*dir);
      ids.push_back(id);
    }
    if (dirs.empty()) return fail(res, 400, "name the runs: ?run=ID&run=ID");
    const std::string format = req.get_param_value("format");
    if (format == "html") return res.set_content(comparison_page(dirs), "text/html; charset=utf-8");
    const Json rows = comparison_rows(dirs, ids);
    if (format == "csv") {
      res.set_header("Content-Disposition", "attachment; filename=\"comparison.csv\"");
      return res.set_content(comparison_csv(rows), "text/csv; charset=utf-8");
    }
    reply(res, 200, rows);
  });
}

}  // namespace trafficid::host
