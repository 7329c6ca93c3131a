#include <fmt/format.h>

#include "trafficid/error.hpp"
#include "trafficid/model.hpp"

namespace trafficid {

const Schema& train_settings_schema() {
  static const Schema schema = {
      ParamSpec::choice("optimizer", "adam", {"adam", "adamw", "sgd"}, "optimiser (sgd: with momentum)"),
      ParamSpec::real("lr", 1e-3, "learning rate").range(1e-8, 10),
      ParamSpec::choice("schedule", "none", {"none", "step", "cosine"},
                        "learning-rate schedule: constant, times gamma every step_size epochs, or cosine to 0"),
      ParamSpec::integer("step_size", 10, "epochs between steps of the step schedule").range(1, 100000),
      ParamSpec::real("gamma", 0.5, "factor of the step schedule").range(0, 1),
      ParamSpec::real("momentum", 0.9, "SGD momentum").range(0, 1),
      ParamSpec::real("weight_decay", 0.0, "L2 penalty (AdamW: decoupled)").range(0, 1),
      ParamSpec::integer("batch_size", 64, "training batch size").range(1, 1 << 20),
      ParamSpec::integer("epochs", 10, "at most this many epochs").range(1, 100000),
      ParamSpec::integer("patience", 3,
                         "stop when validation macro F1 has not improved for this many epochs (0: never)")
          .range(0, 100000),
      ParamSpec::boolean("class_weights", true,
                         "weigh the loss with the dataset's class weights (dataset.balance = \"weights\")"),
      ParamSpec::integer("threads", 0, "LibTorch threads (0: one per core)").range(0, 1024),
      ParamSpec::choice("device", "cpu", {"cpu", "cuda"}, "where to train (cuda: where LibTorch was built with it)"),
      ParamSpec::integer("seed", 0,
                         "seed of the weights and the data order (0: experiment.seed, which also splits the "
                         "dataset); each tuning trial gets its own")
          .range(0, std::nullopt),
      ParamSpec::integer("ensemble", 1,
                         "members trained of each model on the same split, member k from seed + k; their "
                         "probabilities are averaged (a deep ensemble: steadier on captures never seen)")
          .range(1, 32),
  };
  return schema;
}

TrainSettings train_settings(const Json& given) {
  Json j = Json::object();
  for (const auto& spec : train_settings_schema()) j[spec.name] = spec.default_value;
  if (given.is_object())
    for (const auto& [key, value] : given.items()) j[key] = value;
  TrainSettings s;
  try {
    s.optimizer = j.at("optimizer").get<std::string>();
    s.schedule = j.at("schedule").get<std::string>();
    s.device = j.at("device").get<std::string>();
    s.lr = j.at("lr").get<double>();
    s.momentum = j.at("momentum").get<double>();
    s.weight_decay = j.at("weight_decay").get<double>();
    s.gamma = j.at("gamma").get<double>();
    s.batch_size = j.at("batch_size").get<std::int64_t>();
    s.epochs = j.at("epochs").get<std::int64_t>();
    s.patience = j.at("patience").get<std::int64_t>();
    s.step_size = j.at("step_size").get<std::int64_t>();
    s.threads = j.at("threads").get<std::int64_t>();
    s.seed = j.at("seed").get<std::int64_t>();
    s.class_weights = j.at("class_weights").get<bool>();
  } catch (const Json::exception& e) {
    throw Error(fmt::format("[train]: a setting of the wrong type ({})", e.what()));
  }
  return s;
}

}  // namespace trafficid
