// The web application's API, through HTTP as a page or curl uses it: a run started by POST, its
// events in order on the stream, stopped, resumed from the stream's last event, its report; a
// capture uploaded and one live interface classified; the token, the origin, the workspace's
// bounds and the body limit enforced.
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <httplib.h>
#include <thread>

#include "cli/commands.hpp"
#include "serve/server.hpp"
#include "test_support.hpp"
#include "trafficid/params.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {

struct SseMessage {
  std::uint64_t id = 0;
  std::string event;
  Json data;
};

// Reads an event stream (a run's, a live prediction's) to its `end`; `on_message` sees each
// message as it arrives.
std::vector<SseMessage> read_events(httplib::Client& client, const std::string& path, std::uint64_t after,
                                    const std::function<void(const SseMessage&)>& on_message = {}) {
  std::vector<SseMessage> messages;
  std::string buffer;
  httplib::Headers headers = {{"Last-Event-ID", std::to_string(after)}};
  auto result = client.Get(path.c_str(), headers, [&](const char* data, std::size_t size) {
    buffer.append(data, size);
    for (std::size_t end = buffer.find("\n\n"); end != std::string::npos; end = buffer.find("\n\n")) {
      const std::string block = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      SseMessage m;
      std::istringstream lines(block);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("id: ", 0) == 0) m.id = std::stoull(line.substr(4));
        if (line.rfind("event: ", 0) == 0) m.event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) m.data = Json::parse(line.substr(6));
      }
      if (m.event.empty()) continue;  // a heartbeat
      messages.push_back(m);
      if (on_message) on_message(m);
    }
    return true;
  });
  REQUIRE(result);
  CHECK(result->status == 200);
  return messages;
}

std::vector<SseMessage> read_stream(httplib::Client& client, const std::string& id, std::uint64_t after,
                                    const std::function<void(const SseMessage&)>& on_message = {}) {
  return read_events(client, "/api/runs/" + id + "/events", after, on_message);
}

Json described_after_done(httplib::Client& client, const std::string& id) {
  return Json::parse(client.Get(("/api/runs/" + id).c_str())->body);
}

}  // namespace

TEST_CASE("the web API starts a run, streams its events, stops and resumes it, and guards its doors", "[serve]") {
  const fs::path workspace = test_support::temp_dir("serve");
  fs::create_directories(workspace / "experiments");
  fs::copy_file(fs::path(TRAFFICID_SOURCE_DIR) / "experiments" / "quickstart.toml",
                workspace / "experiments" / "quickstart.toml");
  ServeOptions options;
  options.workspace = workspace;
  options.port = 0;
  options.token = "secret";
  options.plugin_paths = {TRAFFICID_PLUGIN_DIR};
  Server server(options);
  const int port = server.bind();
  std::thread serving([&] { server.listen(); });
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  const httplib::Headers token = {{"Authorization", "Bearer secret"}};
  client.set_default_headers(token);

  // The doors: no token, a wrong origin, a path out of the workspace, a body over the limit.
  httplib::Client stranger("127.0.0.1", port);
  CHECK(stranger.Get("/api/runs")->status == 401);
  CHECK(stranger.Get("/")->status == 401);
  CHECK(stranger.Get("/?token=secret")->get_header_value("Set-Cookie").find("trafficid_token=secret") == 0);
  CHECK(client.Post("/api/runs", {{"Origin", "http://evil.example"}}, "{}", "application/json")->status == 403);
  CHECK(client.Post("/api/runs", R"({"experiment": "../quickstart.toml"})", "application/json")->status == 403);
  CHECK(client.Post("/api/runs", R"({"experiment": "/etc/passwd"})", "application/json")->status == 403);
  CHECK(client.Post("/api/validate", std::string(2 << 20, ' '), "application/json")->status == 413);
  CHECK(client.Get("/api/runs/..%2F..%2Fetc")->status == 404);

  // Validation: the page's text checked, each problem at its line.
  std::ifstream shipped(workspace / "experiments" / "quickstart.toml");
  std::string text, line;
  int line_no = 0, bad_line = 0;
  while (std::getline(shipped, line)) {
    ++line_no;
    if (line.rfind("epochs = ", 0) == 0) {  // [train]'s: the page typed a bad value there
      line = "epochs = -3";
      bad_line = line_no;
    }
    text += line + "\n";
  }
  REQUIRE(bad_line > 0);
  auto checked = client.Post(
      "/api/validate", Json{{"experiment", "experiments/quickstart.toml"}, {"text", text}}.dump(), "application/json");
  REQUIRE(checked->status == 200);
  const Json verdict = Json::parse(checked->body);
  CHECK(verdict["valid"] == false);
  CHECK(std::any_of(verdict["diagnostics"].begin(), verdict["diagnostics"].end(),
                    [&](const Json& d) { return d["line"] == bad_line && d["key"] == "train.epochs"; }));
  CHECK(client
            .Post("/api/runs", R"({"experiment": "experiments/quickstart.toml", "set": ["train.epochs=-3"]})",
                  "application/json")
            ->status == 422);

  // The editor's files: a shipped experiment's text, saved under experiments/ (never over a file
  // unless asked, never elsewhere), read back; the form's settings with their values.
  const Json shipped_list = Json::parse(client.Get("/api/shipped")->body);
  CHECK(std::any_of(shipped_list.begin(), shipped_list.end(),
                    [](const Json& e) { return e["name"] == "identify_apps.toml"; }));
  const std::string template_text = client.Get("/shipped/quickstart.toml")->body;
  CHECK(template_text.find("[train]") != std::string::npos);
  const auto save = [&](const std::string& path, bool overwrite) {
    return client
        .Post("/api/experiment", Json{{"path", path}, {"text", template_text}, {"overwrite", overwrite}}.dump(),
              "application/json")
        ->status;
  };
  CHECK(save("experiments/mine.toml", false) == 201);
  CHECK(save("experiments/mine.toml", false) == 409);
  CHECK(save("experiments/mine.toml", true) == 201);
  CHECK(save("../mine.toml", false) == 409);
  CHECK(save("experiments/../../mine.toml", false) == 409);
  CHECK(save("runs/mine.toml", false) == 409);
  CHECK(client.Get("/api/experiment?path=experiments/mine.toml")->body == template_text);
  CHECK(client.Get("/api/experiment?path=../../etc/passwd")->status == 403);
  const Json form =
      Json::parse(client
                      .Post("/api/settings", R"({"experiment": "experiments/mine.toml", "set": ["train.epochs=7"]})",
                            "application/json")
                      ->body);
  CHECK(form["valid"] == true);
  std::map<std::string, Json> fields;
  for (const auto& f : form["settings"]) fields[f["key"]] = f;
  CHECK(fields["train.epochs"]["value"] == 7);
  CHECK(fields["train.epochs"]["min"] == 1);
  CHECK(fields["train.optimizer"]["choices"].size() == 3);
  CHECK(fields.count("models.mlp.layers") == 1);
  CHECK(fields.count("label.ndpi.tcp_max_packets") == 1);

  // A run: started, followed, stopped after its second epoch.
  const Json start = {{"experiment", "experiments/quickstart.toml"},
                      {"set",
                       {"capture.synth.flows_per_app=6", "evaluate.synth.flows_per_app=3",
                        "models={ mlp = { layers = [32] } }", "train.epochs=100", "train.patience=0"}}};
  auto started = client.Post("/api/runs", start.dump(), "application/json");
  REQUIRE(started->status == 201);
  const std::string id = Json::parse(started->body)["id"];
  CHECK(id.rfind("runs/quickstart-", 0) == 0);
  httplib::Client controller("127.0.0.1", port);
  controller.set_default_headers(token);
  // Stopped at the first epoch the stream shows (the run ends at the end of the epoch it is in).
  bool stopped = false;
  auto first = read_stream(client, id, 0, [&](const SseMessage& m) {
    if (m.event == "epoch" && !stopped) {
      stopped = true;
      CHECK(controller.Post(("/api/runs/" + id + "/stop").c_str(), "{}", "application/json")->status == 202);
    }
  });
  REQUIRE(first.size() > 3);
  for (std::size_t i = 1; i + 1 < first.size(); ++i) CHECK(first[i].id > first[i - 1].id);
  CHECK(std::any_of(first.begin(), first.end(),
                    [](const SseMessage& m) { return m.event == "run" && m.data["payload"]["state"] == "started"; }));
  int last_epoch = 0;
  for (const auto& m : first)
    if (m.event == "epoch") last_epoch = m.data["payload"]["epoch"];
  CHECK(last_epoch < 100);
  CHECK(first.back().event == "end");
  const SseMessage& ended = first[first.size() - 2];
  CHECK(ended.event == "run");
  CHECK(ended.data["payload"]["state"] == "interrupted");
  const Json described = Json::parse(client.Get(("/api/runs/" + id).c_str())->body);
  CHECK(described["record"]["status"] == "interrupted");
  CHECK(described["running"] == false);
  CHECK(Json::parse(client.Get("/api/runs")->body)[0]["id"] == id);

  // Resumed; the stream picks up after the last event the page had.
  REQUIRE(client.Post(("/api/runs/" + id + "/resume").c_str(), "{}", "application/json")->status == 201);
  auto second = read_stream(client, id, ended.id);
  REQUIRE(second.size() > 2);
  CHECK(second.front().id > ended.id);
  std::vector<int> epochs;
  for (const auto& m : second)
    if (m.event == "epoch") epochs.push_back(m.data["payload"]["epoch"]);
  REQUIRE(!epochs.empty());
  CHECK(epochs.front() == last_epoch + 1);  // from the checkpoint of the last epoch it finished
  CHECK(epochs.back() == 100);
  CHECK(epochs.size() == static_cast<std::size_t>(100 - last_epoch));
  CHECK(second[second.size() - 2].data["payload"]["state"] == "done");
  auto report = client.Get(("/api/runs/" + id + "/report").c_str());
  CHECK(report->status == 200);
  CHECK(report->body.find("<html") != std::string::npos);
  // Predict: a capture uploaded as the body, classified by the run's best model.
  const fs::path capture = workspace / "other.pcap";
  GlobalOptions global;
  global.plugin_paths = {TRAFFICID_PLUGIN_DIR};
  global.quiet = true;
  REQUIRE(cmd_synth(global, capture.string(), {"seed=7", "flows_per_app=2"}) == 0);
  std::ifstream capture_in(capture, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(capture_in)), std::istreambuf_iterator<char>());
  auto predicted =
      client.Post(("/api/predict?run=" + id + "&name=../other.pcap").c_str(), bytes, "application/octet-stream");
  REQUIRE(predicted->status == 200);
  const Json prediction = Json::parse(predicted->body);
  CHECK(prediction["model"] == "mlp");
  REQUIRE(prediction["flows"].size() >= 10);  // ten applications, two flows each
  std::uint64_t counted = 0;
  for (const auto& [name, n] : prediction["counts"].items()) counted += n.get<std::uint64_t>();
  CHECK(counted == prediction["flows"].size());
  CHECK(prediction["flows"][0].contains("ndpi_label"));
  CHECK(fs::exists(workspace / "uploads"));  // the upload stays in the workspace, its name stripped of "../"
  CHECK(client.Post("/api/predict?run=runs/nothing", "x", "application/octet-stream")->status == 404);
  CHECK(client.Post(("/api/predict?run=" + id).c_str(), "not a capture", "application/octet-stream")->status == 422);

  // Live: the model on lo; the requests a thread keeps making are TCP flows, each decided at its
  // teardown and streamed while the capture goes on; then stopped from the API.
  CHECK(
      client.Post("/api/predictions", Json{{"run", id}, {"interface", "nosuch0"}}.dump(), "application/json")->status ==
      422);
  auto live = client.Post("/api/predictions", Json{{"run", id}, {"interface", "lo"}, {"idle_timeout", 1}}.dump(),
                          "application/json");
  REQUIRE(live->status == 201);
  const std::string live_id = Json::parse(live->body)["id"];
  std::atomic<bool> traffic{true};
  std::thread requests([&] {
    httplib::Client other("127.0.0.1", port);
    other.set_default_headers(token);
    for (int i = 0; traffic && i < 600; ++i) {
      other.Get("/api/interfaces");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  bool asked = false;
  auto decided = read_events(client, "/api/predictions/" + live_id + "/events", 0, [&](const SseMessage& m) {
    if (m.event == "flow" && !asked) {
      asked = true;  // the capture is still going on: its rows stream
      CHECK(Json::parse(controller.Get(("/api/predictions/" + live_id).c_str())->body)["state"] == "capturing");
      CHECK(controller.Post(("/api/predictions/" + live_id + "/stop").c_str(), "{}", "application/json")->status ==
            202);
    }
  });
  traffic = false;
  requests.join();
  REQUIRE(decided.size() >= 2);
  CHECK(decided.front().event == "flow");
  CHECK(decided.front().id == 1);
  CHECK(decided.front().data["file"] == "live:lo");
  CHECK(decided.front().data["protocol"] == 6);
  CHECK(decided.back().event == "end");
  CHECK(decided.back().data["state"] == "done");
  const Json live_described = Json::parse(client.Get(("/api/predictions/" + live_id).c_str())->body);
  CHECK(live_described["flows"] == decided.size() - 1);
  CHECK(live_described["model"] == "mlp");
  auto live_csv = client.Get(("/api/predictions/" + live_id + "/csv").c_str());
  CHECK(live_csv->body.rfind("t,protocol,src_ip,", 0) == 0);
  CHECK(std::count(live_csv->body.begin(), live_csv->body.end(), '\n') == static_cast<long>(decided.size()));
  CHECK(controller.Post(("/api/predictions/" + live_id + "/stop").c_str(), "{}", "application/json")->status == 409);

  // Data: the labels database labelled from the capture (a stray .db file is no labels database),
  // the run's dataset with its counts per split and class.
  LabelRequest labelling;
  labelling.paths = {capture.string()};
  labelling.db = (workspace / "labels.db").string();
  REQUIRE(cmd_label(global, labelling) == 0);
  std::ofstream(workspace / "other.db") << "not a database";
  const Json databases = Json::parse(client.Get("/api/labels")->body);
  REQUIRE(databases.size() == 1);
  CHECK(databases[0]["id"] == "labels.db");
  const Json apps = Json::parse(client.Get("/api/labels?db=labels.db")->body);
  REQUIRE(!apps["applications"].empty());
  std::uint64_t labelled_flows = 0;
  for (const auto& a : apps["applications"]) labelled_flows += a["flows"].get<std::uint64_t>();
  CHECK(labelled_flows >= 20);
  CHECK(client.Get("/api/labels?db=other.db")->status == 404);
  CHECK(client.Get("/api/labels?db=../../etc/passwd")->status == 404);
  const Json sets = Json::parse(client.Get("/api/datasets")->body);
  REQUIRE(sets.size() >= 1);
  CHECK(sets[0]["id"].get<std::string>().rfind("runs/datasets/quickstart-", 0) == 0);
  CHECK(sets[0]["classes"].size() == 7);
  CHECK(sets[0]["rows"] == sets[0]["per_split"]["train"].get<std::uint64_t>() +
                               sets[0]["per_split"]["validation"].get<std::uint64_t>() +
                               sets[0]["per_split"]["test"].get<std::uint64_t>());

  // Compare: rows per run and model, as JSON and CSV, and the comparison page.
  const Json rows = Json::parse(client.Get(("/api/compare?run=" + id).c_str())->body);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["model"] == "mlp");
  CHECK(rows[0]["best"] == true);
  CHECK(rows[0]["headline_macro_f1"] == described_after_done(client, id)["models"]["mlp"]["headline"]["macro_f1"]);
  auto csv = client.Get(("/api/compare?format=csv&run=" + id).c_str());
  CHECK(csv->body.rfind("run,model,best,headline_what,headline_macro_f1,", 0) == 0);
  CHECK(std::count(csv->body.begin(), csv->body.end(), '\n') == 2);
  CHECK(client.Get(("/api/compare?format=html&run=" + id).c_str())->body.find("<html") != std::string::npos);
  CHECK(client.Get("/api/compare?run=runs/nothing")->status == 404);
  CHECK(client.Get("/api/compare")->status == 400);

  auto page = client.Get("/");
  CHECK(page->status == 200);
  CHECK(page->body.find("/app.js") != std::string::npos);

  server.stop();
  serving.join();
  fs::remove_all(workspace);
}

TEST_CASE("the web API runs a tuning study as a process, stops and resumes it, and runs its best configuration",
          "[serve]") {
  const fs::path workspace = test_support::temp_dir("serve-study");
  fs::create_directories(workspace / "experiments");
  const fs::path shipped = fs::path(TRAFFICID_SOURCE_DIR) / "experiments" / "quickstart.toml";
  fs::copy_file(shipped, workspace / "experiments" / "quickstart.toml");
  {
    std::ifstream in(shipped);
    std::ofstream out(workspace / "experiments" / "study.toml");
    out << in.rdbuf() << "\n[tune]\ntuner = \"random\"\ntrials = 3\nmetric = \"val.macro_f1\"\npruner = \"none\"\n"
        << "[tune.space]\n\"train.lr\" = { loguniform = [1e-3, 3e-2] }\n";
  }
  ServeOptions options;
  options.workspace = workspace;
  options.port = 0;
  options.token = "secret";
  options.plugin_paths = {TRAFFICID_PLUGIN_DIR};
  options.program = TRAFFICID_BINARY;
  Server server(options);
  const int port = server.bind();
  std::thread serving([&] { server.listen(); });
  httplib::Client client("127.0.0.1", port), controller("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  const httplib::Headers token = {{"Authorization", "Bearer secret"}};
  client.set_default_headers(token);
  controller.set_default_headers(token);

  CHECK(client.Post("/api/studies", R"({"experiment": "experiments/quickstart.toml"})", "application/json")->status ==
        422);  // no [tune]
  CHECK(client.Get("/api/studies/..%2F..%2Fetc")->status == 404);
  const Json start = {{"experiment", "experiments/study.toml"},
                      {"set",
                       {"capture.synth.flows_per_app=6", "evaluate.synth.flows_per_app=3",
                        "models={ mlp = { layers = [32] } }", "train.epochs=20", "train.patience=0"}}};
  auto started = client.Post("/api/studies", start.dump(), "application/json");
  REQUIRE(started->status == 201);
  const std::string id = Json::parse(started->body)["id"];
  CHECK(id.rfind("studies/quickstart-", 0) == 0);
  CHECK(Json::parse(client.Get("/api/studies")->body)[0]["id"] == id);

  // Stopped once its first trial is done: the process ends, the stream with it.
  bool stopped = false;
  auto first = read_events(client, "/api/" + id + "/events", 0, [&](const SseMessage& m) {
    if (m.event == "trial" && m.data["payload"]["state"] == "done" && !stopped) {
      stopped = true;
      CHECK(controller.Post(("/api/" + id + "/stop").c_str(), "{}", "application/json")->status == 202);
    }
  });
  REQUIRE(stopped);
  CHECK(first.back().event == "end");
  Json described = Json::parse(client.Get(("/api/" + id).c_str())->body);
  CHECK(described["running"] == false);
  CHECK(described["resumable"] == true);
  const int done_before = described["counts"]["done"];
  CHECK(done_before >= 1);
  CHECK(done_before < 3);

  // Resumed: the journal goes on to the budget; the best configuration is written and runs.
  REQUIRE(client.Post(("/api/" + id + "/resume").c_str(), "{}", "application/json")->status == 201);
  auto second = read_events(client, "/api/" + id + "/events", first[first.size() - 2].id);
  CHECK(second.front().id > first[first.size() - 2].id);
  described = Json::parse(client.Get(("/api/" + id).c_str())->body);
  CHECK(described["counts"]["done"] == 3);
  REQUIRE(described["trials"].size() == 3);
  for (const auto& t : described["trials"]) {
    CHECK(t["reports"].size() == 20);  // a value per epoch: the page's curves
    CHECK(t["assignment"].contains("train.lr"));
  }
  CHECK(described["best"]["value"].is_number());
  CHECK(described["best_toml"] == true);
  CHECK(client.Get(("/api/" + id + "/report").c_str())->body.find("<html") != std::string::npos);
  CHECK(client.Get(("/api/" + id + "/best.toml").c_str())->body.find("train") != std::string::npos);
  auto best_run = client.Post(("/api/" + id + "/run-best").c_str(), "{}", "application/json");
  REQUIRE(best_run->status == 201);
  const std::string run_id = Json::parse(best_run->body)["id"];
  CHECK(run_id.rfind("runs/", 0) == 0);
  auto run = read_stream(client, run_id, 0);
  CHECK(run[run.size() - 2].data["payload"]["state"] == "done");

  server.stop();
  serving.join();
  fs::remove_all(workspace);
}
