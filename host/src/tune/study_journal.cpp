#include "tune/study_journal.hpp"

#include <fmt/format.h>

#include "trafficid/error.hpp"

namespace trafficid::host {

namespace {

// `key` of `j` as T, or Error naming the key and the type wanted.
template <class T>
T field(const Json& j, const char* key, const char* type) {
  if (!j.is_object() || !j.contains(key)) throw Error(fmt::format("no '{}'", key));
  const Json& v = j[key];
  bool ok = false;
  if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
  else if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
  else if constexpr (std::is_same_v<T, double>) ok = v.is_number();
  else if constexpr (std::is_unsigned_v<T>)
    ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
  else ok = v.is_number_integer();
  if (!ok) throw Error(fmt::format("'{}' is {}, not {}", key, v.dump().substr(0, 60), type));
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // nlohmann converts out-of-range integers silently: check the range here.
    if constexpr (std::is_signed_v<T>) {
      if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        throw Error(fmt::format("'{}' is out of range", key));
      if (v.is_number_integer() && !v.is_number_unsigned()) {
        const auto x = v.get<std::int64_t>();
        if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
          throw Error(fmt::format("'{}' is out of range", key));
      }
    }
  }
  return v.get<T>();
}

SearchDimension dimension_from(const Json& j) {
  SearchDimension d;
  d.path = field<std::string>(j, "path", "a string");
  const auto kind = search_kind(field<std::string>(j, "kind", "a string"));
  if (!kind) throw Error(fmt::format("an unknown distribution: {}", j.dump()));
  d.kind = *kind;
  if (!j.contains("choices") || !j["choices"].is_array()) throw Error("a dimension without 'choices' (an array)");
  d.choices = j["choices"].get<std::vector<Json>>();
  d.low = field<double>(j, "low", "a number");
  d.high = field<double>(j, "high", "a number");
  return d;
}

}  // namespace

StudyHeader parse_study_header(const Json& j) {
  StudyHeader h;
  h.json = j;
  h.name = field<std::string>(j, "name", "a string");
  h.tuner = field<std::string>(j, "tuner", "a string");
  if (!j.contains("tuner_params") || !j["tuner_params"].is_object()) throw Error("no 'tuner_params' (an object)");
  h.tuner_params = j["tuner_params"];
  if (!j.contains("dimensions") || !j["dimensions"].is_array()) throw Error("no 'dimensions' (an array)");
  for (const auto& d : j["dimensions"]) h.space.dimensions.push_back(dimension_from(d));
  h.space.maximize = field<bool>(j, "maximize", "true or false");
  h.space.seed = field<std::uint64_t>(j, "seed", "a count");
  h.space.max_steps = field<std::int64_t>(j, "max_steps", "an integer");
  h.trials = field<std::uint64_t>(j, "trials", "a count");
  h.space.max_trials = h.trials;
  h.metric = field<std::string>(j, "metric", "a string");
  h.time_budget = field<double>(j, "time_budget", "a number");
  h.retries = field<int>(j, "retries", "an integer");
  h.pruner = field<std::string>(j, "pruner", "a string");
  h.pruner_warmup = field<std::int64_t>(j, "pruner_warmup", "an integer");
  h.pruner_min_trials = field<std::int64_t>(j, "pruner_min_trials", "an integer");
  if (!j.contains("base_config") || !j["base_config"].is_object()) throw Error("no 'base_config' (an object)");
  h.base_config = j["base_config"];
  return h;
}

void check_journal_event(const Json& e, const std::filesystem::path& file, std::size_t line) {
  try {
    const std::string kind = field<std::string>(e, "event", "a string");
    if (kind == "study") {
      if (line != 1) throw Error("a second study header");
      parse_study_header(e);
      return;
    }
    if (line == 1) throw Error("the first line is not the study header (is this a trafficid study?)");
    field<std::uint64_t>(e, "trial", "a trial number");
    if (kind == "propose") {
      if (!e.contains("assignment") || !e["assignment"].is_object()) throw Error("no 'assignment' (an object)");
    } else if (kind == "start") {
      field<int>(e, "attempt", "an integer");
      if (e.contains("worker")) field<std::string>(e, "worker", "a string");
    } else if (kind == "report") {
      field<int>(e, "step", "an integer");
      // A null value is what an older trafficid wrote for a diverged epoch: read, then skipped.
      if (e.contains("value") && !e["value"].is_null()) field<double>(e, "value", "a number");
      if (e.contains("decision")) {
        const auto d = field<std::string>(e, "decision", "a string");
        if (d != "stop" && d != "continue") throw Error(fmt::format("'decision' is '{}', not stop or continue", d));
      }
    } else if (kind == "end") {
      const auto status = field<std::string>(e, "status", "a string");
      if (status != "done" && status != "pruned" && status != "failed")
        throw Error(fmt::format("'status' is '{}', not done, pruned or failed", status));
      field<int>(e, "attempt", "an integer");
      if (e.contains("seconds")) field<double>(e, "seconds", "a number");
      if (e.contains("value") && !e["value"].is_null()) field<double>(e, "value", "a number");
      if (e.contains("error")) field<std::string>(e, "error", "a string");
      if (e.contains("retry")) field<bool>(e, "retry", "true or false");
    } else {
      throw Error(fmt::format("an unknown event '{}'", kind));
    }
  } catch (const Error& error) {
    throw Error(fmt::format("{}:{}: not a journal event: {}; the journal was edited or damaged", file.string(), line,
                            error.what()));
  }
}

JournalText parse_journal(std::string_view text, const std::filesystem::path& file) {
  JournalText out;
  std::size_t start = 0, line = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    ++line;
    if (end == std::string_view::npos) {
      out.cut_at = start;  // a line cut by a crash while it was written: it never happened
      break;
    }
    Json event;
    try {
      event = Json::parse(text.substr(start, end - start));
    } catch (const Json::exception& e) {
      throw Error(fmt::format("{}:{}: not a journal event ({}); the journal was edited or damaged", file.string(), line,
                              e.what()));
    }
    check_journal_event(event, file, line);
    out.events.push_back(std::move(event));
    start = end + 1;
  }
  return out;
}

}  // namespace trafficid::host
