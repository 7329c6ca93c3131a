// trafficid serve: the page. Plain JavaScript, no build step, no library: the REST API under /api/
// (the token travels in the cookie the first URL set) and one event stream per run page.
"use strict";

const view = document.getElementById("view");
let closeView = () => {};  // what the current view must stop (its stream, its timer) when left

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

async function api(path, body) {
  const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch("/api/" + path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const fixed = (x) => (typeof x === "number" ? x.toFixed(4) : "");
// A model's name, and for an ensemble its members' range alone (unseen captures where scored),
// for a blend the models it averages.
function modelCell(name, members, best, blend) {
  const cell = el("td", {}, name + (best ? " (best)" : ""));
  if (blend) cell.append(el("br"), el("small", {class: "blend"}, `mean of ${blend.join(", ")}`));
  if (members) {
    const r = members.unseen || members.validation;
    cell.append(el("br"), el("small", {class: "members"}, `ensemble of ${members.count}; members ${r.low.toFixed(2)}–${r.high.toFixed(2)} ` +
      (members.unseen ? "unseen" : "validation")));
  }
  return cell;
}
function headlineText(h) {
  if (!h || typeof h.macro_f1 !== "number") return "";
  const i = h.interval;
  return `${h.macro_f1.toFixed(4)}` + (i ? ` (95% ${i.low.toFixed(2)}–${i.high.toFixed(2)})` : "") + ` ${h.what || ""}`;
}

// --- Runs -------------------------------------------------------------------------------------
async function showRuns() {
  const table = el("table", {id: "runs"}, el("tr", {}, ...["", "run", "experiment", "status", "best model", "headline", "started"].map((h) => el("th", {}, h))));
  const picked = new Set();
  const compare = el("button", {id: "compare", onclick: () => { if (picked.size) location.hash = "#/compare/" + [...picked].join(","); }}, "Compare selected");
  const studies = el("table", {id: "studies"}, el("tr", {}, ...["study", "tuner", "metric", "trials", "best", "status"].map((h) => el("th", {}, h))));
  view.replaceChildren(el("h1", {}, "Runs"), el("p", {}, compare), table, el("h1", {}, "Studies"), studies);
  const fill = async () => {
    const list = await api("studies");
    studies.querySelectorAll("tr.study").forEach((r) => r.remove());
    for (const st of list) {
      const c = st.counts || {};
      studies.append(el("tr", {class: "study"}, el("td", {}, el("a", {href: "#/study/" + st.id}, st.id)), el("td", {}, st.tuner || ""),
        el("td", {}, `${st.maximize ? "max" : "min"} ${st.metric || ""}`), el("td", {}, `${c.done || 0} done, ${c.pruned || 0} pruned, ${c.failed || 0} failed of ${st.budget || "?"}`),
        el("td", {}, st.best ? `${fixed(st.best.value)} (trial ${st.best.trial})` : ""),
        el("td", {class: st.running ? "status-running" : ""}, st.running ? "running" : "")));
    }
    const runs = await api("runs");
    table.querySelectorAll("tr.run").forEach((r) => r.remove());
    for (const r of runs) {
      const status = r.running ? "running" : r.status;
      const box = el("input", {type: "checkbox", class: "pick", onchange: (e) => (e.target.checked ? picked.add(r.id) : picked.delete(r.id))});
      box.checked = picked.has(r.id);
      table.append(el("tr", {class: "run"}, el("td", {}, box),
        el("td", {}, el("a", {href: "#/run/" + r.id}, r.id)), el("td", {}, r.name),
        el("td", {class: "status-" + status}, status), el("td", {}, r.best_model || ""),
        el("td", {}, headlineText(r.best && r.best.headline)), el("td", {}, r.started)));
    }
  };
  await fill();
  const timer = setInterval(fill, 3000);
  closeView = () => clearInterval(timer);
}

// --- New run ----------------------------------------------------------------------------------
// An experiment in an editor checked as it is typed (diagnostics at their lines), a form of the
// settings its sections and plugins declare (each change an override line), Save, Start.
const tomlValue = (field, input) => {
  if (field.type === "bool") return input.checked ? "true" : "false";
  if (field.type === "int" || field.type === "float") return input.value;
  if (field.type.endsWith("list")) return input.value;
  return JSON.stringify(input.value);
};

function settingsForm(settings, overrides, changed) {
  const groups = {};
  for (const f of settings) (groups[f.section] = groups[f.section] || []).push(f);
  const setLine = (key, value) => {  // the override line of `key`: replaced, added, or (null) removed
    const lines = overrides.value.split("\n").filter((l) => l.trim() && !l.trim().startsWith(key + "="));
    if (value !== null) lines.push(`${key}=${value}`);
    overrides.value = lines.join("\n");
    changed();
  };
  return el("div", {id: "settings"}, ...Object.entries(groups).map(([section, fields], i) => el("details", i === 0 ? {class: "group", open: ""} : {class: "group"},
    el("summary", {}, section), el("table", {}, ...fields.map((f) => {
      let input;
      const current = f.value;
      if (f.choices) input = el("select", {}, ...f.choices.map((c) => el("option", {value: c}, c)));
      else if (f.type === "bool") input = el("input", {type: "checkbox"});
      else if (f.type === "int" || f.type === "float") {
        input = el("input", {type: "number", step: f.type === "int" ? 1 : "any"});
        if (f.min !== undefined) input.min = f.min;
        if (f.max !== undefined) input.max = f.max;
      } else input = el("input", {type: "text", size: 24});
      input.name = f.key;
      input.className = "setting";
      if (f.type === "bool") input.checked = !!current;
      else input.value = current === null || current === undefined ? "" : (typeof current === "object" ? JSON.stringify(current) : current);
      const initial = f.type === "bool" ? String(!!current) : input.value;
      input.addEventListener("change", () => {
        const now = f.type === "bool" ? String(input.checked) : input.value;
        setLine(f.key, now === initial ? null : tomlValue(f, input));
      });
      const range = f.min !== undefined || f.max !== undefined ? ` [${f.min ?? "…"}, ${f.max ?? "…"}]` : "";
      return el("tr", {}, el("td", {}, el("code", {}, f.key)), el("td", {}, input), el("td", {}, el("small", {}, `${f.help}${range}`)));
    })))));
}

async function showNew() {
  const [experiments, shipped] = await Promise.all([api("experiments"), api("shipped")]);
  const select = el("select", {id: "experiment"}, el("option", {value: ""}, "(pick one)"), ...experiments.map((e) => el("option", {value: e}, e)));
  const template = el("select", {id: "shipped"}, el("option", {value: ""}, "(or start from a shipped one)"), ...shipped.map((e) => el("option", {value: e.url}, e.name)));
  const path = el("input", {id: "path", type: "text", size: 40, placeholder: "experiments/NAME.toml"});
  const editor = el("textarea", {id: "editor", spellcheck: "false", wrap: "off"});
  const gutter = el("pre", {id: "gutter"});
  const overrides = el("textarea", {id: "overrides", placeholder: "one --set per line, e.g. train.epochs=3 (the form below writes them too)"});
  const diagnostics = el("ul", {class: "diagnostics", id: "diagnostics"});
  const form = el("div", {id: "form"});
  let opened = "", saved = "", timer = null, formFor = null;
  const sets = () => overrides.value.split("\n").map((x) => x.trim()).filter((x) => x);
  const draw = (bad = {}) => {
    const n = editor.value.split("\n").length;
    gutter.replaceChildren(...Array.from({length: n}, (_, i) => el("span", {class: bad[i + 1] || ""}, `${i + 1}`)));
    gutter.scrollTop = editor.scrollTop;
  };
  editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
  const check = async () => {
    clearTimeout(timer);
    if (!path.value) return false;
    const r = await api("validate", {experiment: path.value, text: editor.value, set: sets()});
    const bad = {};
    for (const d of r.diagnostics) if (d.line && d.file.endsWith(path.value.split("/").pop())) bad[d.line] = d.warning ? "warning" : "error";
    draw(bad);
    diagnostics.replaceChildren(...(r.valid && !r.diagnostics.length ? [el("li", {}, "valid")] : []),
      ...r.diagnostics.map((d) => el("li", {class: d.warning ? "warning" : "error", onclick: () => goTo(d.line)},
        `${d.line}:${d.column} ${d.key}${d.key ? ": " : ""}${d.message}`)));
    if (r.valid && formFor !== path.value + editor.value) buildForm();
    return r.valid;
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(check, 400); };
  const goTo = (line) => {
    const at = editor.value.split("\n").slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
    editor.focus(); editor.setSelectionRange(at, at);
  };
  const buildForm = async () => {
    formFor = path.value + editor.value;
    const r = await api("settings", {experiment: path.value, text: editor.value});
    form.replaceChildren(...(r.settings.length ? [el("h2", {}, "Settings"), el("p", {}, el("small", {}, "From the schemas of its sections and plugins; a change becomes an override line.")), settingsForm(r.settings, overrides, later)] : []));
  };
  const load = (text, file, existing) => {
    editor.value = text; path.value = file; opened = existing ? file : ""; saved = existing ? text : null;
    overrides.value = ""; formFor = null; draw(); check();
  };
  select.addEventListener("change", async () => {
    if (!select.value) return;
    const response = await fetch("/api/experiment?path=" + encodeURIComponent(select.value));
    load(await response.text(), select.value, true);
  });
  template.addEventListener("change", async () => {
    if (!template.value) return;
    const name = template.value.split("/").pop();
    const taken = experiments.includes("experiments/" + name);
    load(await (await fetch(template.value)).text(), "experiments/" + (taken ? name.replace(/\.toml$/, "-copy.toml") : name), false);
  });
  editor.addEventListener("input", () => { draw(); later(); });
  overrides.addEventListener("input", later);
  path.addEventListener("change", later);
  const save = async () => {
    await api("experiment", {path: path.value, text: editor.value, overwrite: path.value === opened});
    opened = path.value; saved = editor.value;
    if (!experiments.includes(path.value)) { experiments.push(path.value); select.append(el("option", {value: path.value}, path.value)); }
    select.value = path.value;
  };
  const start = async (what) => {
    try {
      if (saved !== editor.value || opened !== path.value) await save();
      const r = await api(what, {experiment: path.value, set: sets()});
      location.hash = (what === "runs" ? "#/run/" : "#/study/") + r.id;
    } catch (e) {
      diagnostics.replaceChildren(el("li", {class: "error"}, e.message));
    }
  };
  view.replaceChildren(el("h1", {}, "New run"),
    el("p", {}, "Experiment ", select, " ", template),
    el("p", {}, "File ", path, " ", el("button", {id: "save", onclick: () => save().then(() => diagnostics.prepend(el("li", {}, `saved ${path.value}`))).catch((e) => diagnostics.replaceChildren(el("li", {class: "error"}, e.message)))}, "Save")),
    el("div", {class: "editor"}, gutter, editor), diagnostics,
    el("p", {}, "Overrides", el("br"), overrides),
    el("p", {}, el("button", {id: "validate", onclick: check}, "Validate"), el("button", {id: "start", onclick: () => start("runs")}, "Start"),
      el("button", {id: "start-study", onclick: () => start("studies"), title: "tune the experiment's [tune] space"}, "Start study")),
    form);
  draw();
}

// --- A run, live ------------------------------------------------------------------------------
function lineChart(title, series) {
  const w = 420, h = 200, pad = 32;
  const points = series.flatMap((s) => s.points);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h);
  const box = el("div", {class: "chart"}, el("div", {}, title), svg);
  if (!points.length) return box;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(0, ...ys), y1 = Math.max(...ys, y0 + 1e-9);
  const X = (x) => pad + (x - x0) / (x1 - x0) * (w - 2 * pad), Y = (y) => h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad);
  const svgEl = (tag, attrs) => { const e = document.createElementNS(svg.namespaceURI, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  svg.append(svgEl("line", {x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "#999"}));
  for (const [v, y] of [[y0, h - pad], [y1, pad]]) { const t = svgEl("text", {x: 2, y: y + 4, "font-size": 10}); t.textContent = v.toFixed(2); svg.append(t); }
  series.forEach((s, i) => {
    svg.append(svgEl("polyline", {points: s.points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "), fill: "none", stroke: s.color, "stroke-width": 2, class: "series"}));
    const t = svgEl("text", {x: w - pad - 110, y: 12 + 12 * i, "font-size": 10, fill: s.color}); t.textContent = s.name; svg.append(t);
  });
  return box;
}

async function showRun(id) {
  const status = el("p", {id: "status"}), progress = el("p", {id: "progress"}), charts = el("div", {class: "charts", id: "charts"});
  const log = el("div", {class: "log", id: "log"}), summary = el("div", {id: "summary"});
  const stop = el("button", {id: "stop", onclick: () => api(`runs/${id}/stop`, {}).catch((e) => alert(e.message))}, "Stop");
  const resume = el("button", {id: "resume", onclick: () => api(`runs/${id}/resume`, {}).then(() => follow()).catch((e) => alert(e.message))}, "Resume");
  view.replaceChildren(el("h1", {}, id), status, el("p", {}, stop, resume), progress, el("h2", {}, "Curves"), charts, summary, el("h2", {}, "Log"), log);
  const epochs = {};  // model -> epoch metrics
  let last = 0, source = null;
  const draw = () => charts.replaceChildren(...Object.entries(epochs).map(([model, list]) => lineChart(model, [
    {name: "train loss", color: "#1f77b4", points: list.map((e) => [e.epoch, e.train_loss])},
    {name: "validation loss", color: "#ff7f0e", points: list.map((e) => [e.epoch, e.val_loss])},
    {name: "validation macro F1", color: "#2ca02c", points: list.map((e) => [e.epoch, e.val_macro_f1])}])));
  const describe = async () => {
    const d = await api("runs/" + id);
    const state = d.running ? "running" : d.record.status;
    status.replaceChildren("Status: ", el("span", {class: "status-" + state}, state), d.record.best_model ? ` — best model ${d.record.best_model}` : "");
    stop.disabled = !d.stoppable; resume.disabled = d.running || state === "done";
    summary.replaceChildren(...(Object.keys(d.models).length ? [el("h2", {}, "Models"), el("table", {id: "models"},
      el("tr", {}, ...["model", "headline", "test per-flow", "validation per-flow"].map((h) => el("th", {}, h))),
      ...Object.entries(d.models).filter(([, m]) => m).map(([name, m]) => el("tr", {}, modelCell(name, m.members, false, m.blend),
        el("td", {class: "headline"}, headlineText(m.headline)), el("td", {}, fixed(m.test_per_flow)), el("td", {}, fixed(m.validation_per_flow)))))] : []),
      ...(d.report ? [el("p", {}, el("a", {href: `/api/runs/${id}/report`, target: "_blank", id: "report"}, "The run's report"))] : []));
  };
  const onEvent = (e) => {
    const event = JSON.parse(e.data);
    last = event.seq;
    const p = event.payload;
    if (event.kind === "epoch") { (epochs[p.model] = epochs[p.model] || []).push(p); draw(); }
    else if (event.kind === "stage" && p.state === "progress") progress.textContent = `${p.name}: ${p.packets} packets, ${(p.bytes / 1e6).toFixed(1)} MB`;
    else if (event.kind === "stage") progress.textContent = `${p.name} ${p.state}`;
    else if (event.kind === "log") { log.append(el("div", {class: p.level}, p.message)); log.scrollTop = log.scrollHeight; }
    if (event.kind === "run" || event.kind === "model") describe();
  };
  const follow = () => {
    if (source) source.close();
    source = new EventSource(`/api/runs/${id}/events?after=${last}`);
    for (const kind of ["run", "stage", "model", "epoch", "trial", "log"]) source.addEventListener(kind, onEvent);
    source.addEventListener("end", () => { source.close(); describe(); });
  };
  await describe();
  follow();
  closeView = () => source && source.close();
}

// --- A study, live -----------------------------------------------------------------------------
async function showStudy(id) {
  const status = el("p", {id: "study-status"}), chart = el("div", {class: "charts", id: "study-chart"});
  const trials = el("div", {id: "trials"}), best = el("div", {id: "best"}), links = el("p", {});
  const stop = el("button", {id: "stop-study", onclick: () => api(`${id}/stop`, {}).catch((e) => alert(e.message))}, "Stop");
  const resume = el("button", {id: "resume-study", onclick: () => api(`${id}/resume`, {}).then(() => follow()).catch((e) => alert(e.message))}, "Resume");
  const runBest = el("button", {id: "run-best", onclick: () => api(`${id}/run-best`, {}).then((r) => { location.hash = "#/run/" + r.id; }).catch((e) => alert(e.message))}, "Run best.toml");
  view.replaceChildren(el("h1", {}, id), status, el("p", {}, stop, resume, runBest), links, el("h2", {}, "Intermediate values"), chart,
    el("h2", {}, "Trials"), trials, best);
  let source = null, last = 0, pending = false;
  const describe = async () => {
    pending = false;
    const d = await api(id);
    if (d.error) return status.replaceChildren(el("span", {class: "status-failed"}, d.error));
    status.replaceChildren(el("span", {class: d.running ? "status-running" : ""}, d.running ? "running" : "not running"),
      ` — ${d.tuner}, ${d.maximize ? "maximize" : "minimize"} ${d.metric}, pruner ${d.pruner}: ${d.progress}`);
    const c = d.counts, finished = c.done + c.pruned + c.failed >= d.budget;
    stop.disabled = !d.running; resume.disabled = d.running || !d.resumable || finished; runBest.disabled = !d.best_toml;
    links.replaceChildren(...(d.report ? [el("a", {href: `/api/${id}/report`, target: "_blank", id: "study-report"}, "The study's report"), " · "] : []),
      ...(d.best_toml ? [el("a", {href: `/api/${id}/best.toml`, target: "_blank"}, "best.toml")] : []));
    chart.replaceChildren(lineChart(`${d.metric} per epoch, one line per trial`, d.trials.filter((t) => t.reports.length).map((t, i) =>
      ({name: `trial ${t.id} (${t.status})`, color: palette[i % palette.length], points: t.reports}))));
    trials.replaceChildren(el("table", {id: "trial-table"}, el("tr", {}, ...["trial", "status", d.metric, "epochs", "assignment", "seconds", "error"].map((h) => el("th", {}, h))),
      ...d.trials.map((t) => el("tr", {class: "trial status-" + t.status}, el("td", {}, t.id), el("td", {}, t.status), el("td", {}, fixed(t.value)),
        el("td", {}, t.reports.length), el("td", {}, el("code", {}, JSON.stringify(t.assignment))), el("td", {}, t.seconds.toFixed(1)), el("td", {}, t.error)))));
    const b = d.best && d.trials.find((t) => t.id === d.best.trial);
    best.replaceChildren(...(b ? [el("h2", {}, "Best configuration"), el("p", {id: "best-config"}, `trial ${b.id}: ${d.metric} ${fixed(b.value)} with `, el("code", {}, JSON.stringify(b.assignment)))] : []));
  };
  const later = () => { if (!pending) { pending = true; setTimeout(describe, 700); } };
  const follow = () => {
    if (source) source.close();
    source = new EventSource(`/api/${id}/events?after=${last}`);
    const seen = (e) => { last = JSON.parse(e.data).seq; later(); };
    for (const kind of ["trial", "log"]) source.addEventListener(kind, seen);
    source.addEventListener("end", () => { source.close(); describe(); });
  };
  await describe();
  follow();
  closeView = () => source && source.close();
}

// --- Compare ----------------------------------------------------------------------------------
async function showCompare(ids) {
  const query = ids.map((id) => "run=" + encodeURIComponent(id)).join("&");
  const rows = await api("compare?" + query);
  const columns = ["run", "model", "headline", "test per-flow", "validation per-flow", "parameters", "training s"];
  view.replaceChildren(el("h1", {}, `Compare ${ids.length} runs`),
    el("p", {}, el("a", {href: "/api/compare?format=html&" + query, target: "_blank", id: "comparison"}, "The comparison page"), " · ",
      el("a", {href: "/api/compare?format=csv&" + query, id: "csv"}, "CSV"), " · ",
      el("a", {href: "/api/compare?" + query, target: "_blank"}, "JSON")),
    el("table", {id: "compared"}, el("tr", {}, ...columns.map((c) => el("th", {}, c))),
      ...rows.map((r) => el("tr", {class: "compared"}, el("td", {}, r.run), modelCell(r.model, r.members, r.best, r.blend),
        el("td", {class: "headline"}, headlineText({what: r.headline_what, macro_f1: r.headline_macro_f1,
          interval: r.interval_low === null ? null : {low: r.interval_low, high: r.interval_high}})),
        el("td", {}, fixed(r.test_per_flow_macro_f1)), el("td", {}, fixed(r.validation_per_flow_macro_f1)),
        el("td", {}, r.parameters), el("td", {}, r.training_seconds.toFixed(1))))),
    // What `trafficid report` shows of them: what differs in their configurations, validation
    // curves, per-class F1 (the same page, drawn by the report's code).
    el("iframe", {id: "comparison-page", src: "/api/compare?format=html&" + query, title: "comparison"}));
}

// --- Predict ----------------------------------------------------------------------------------
const flowColumns = ["protocol", "src_ip", "src_port", "dst_ip", "dst_port", "packets", "bytes", "ndpi_label", "class", "confidence", "abstains"];
const flowRow = (row) => el("tr", {class: "flow"}, ...flowColumns.map((c) => el("td", {}, c === "confidence" ? row[c].toFixed(3) : row[c])));
const countsTable = (counts) => el("table", {id: "counts"}, el("tr", {}, el("th", {}, "class"), el("th", {}, "flows")),
  ...Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([c, n]) => el("tr", {}, el("td", {}, c), el("td", {}, n))));
const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

async function showPredict() {
  const runs = (await api("runs")).filter((r) => r.status === "done" && r.best_model);
  const select = el("select", {id: "predict-run"}, ...runs.map((r) => el("option", {value: r.id}, `${r.id} (${r.best_model})`)));
  // The run's best model (by validation), or one of its models by name.
  const model = el("select", {id: "predict-model"});
  const models = async () => {
    const d = select.value ? await api("runs/" + select.value) : {models: {}};
    model.replaceChildren(el("option", {value: ""}, "its best model (by validation)"),
      ...Object.keys(d.models).map((m) => el("option", {value: m}, m)));
  };
  select.addEventListener("change", models);
  await models();
  const modelQuery = () => (model.value ? `&model=${encodeURIComponent(model.value)}` : "");
  const file = el("input", {type: "file", id: "capture", accept: ".pcap,.pcapng,.cap"});
  const result = el("div", {id: "prediction"});
  const go = async () => {
    if (!file.files.length) return;
    const f = file.files[0];
    result.replaceChildren(el("p", {}, `classifying ${f.name} ...`));
    const response = await fetch(`/api/predict?run=${encodeURIComponent(select.value)}${modelQuery()}&name=${encodeURIComponent(f.name)}`,
      {method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: f});
    const r = await response.json();
    if (!response.ok) return result.replaceChildren(el("p", {class: "status-failed"}, r.error || response.statusText));
    const csv = [flowColumns.join(","), ...r.flows.map((row) => flowColumns.map((c) => row[c]).join(","))].join("\n");
    result.replaceChildren(
      el("p", {}, `${r.flows.length} flows of ${r.packets} packets classified by ${r.model} (${r.why}). `,
        el("a", {href: "data:text/csv;charset=utf-8," + encodeURIComponent(csv), download: r.capture + ".csv"}, "CSV")),
      countsTable(r.counts), el("h2", {}, "Flows"),
      el("table", {id: "flows"}, el("tr", {}, ...flowColumns.map((c) => el("th", {}, c))), ...r.flows.map(flowRow)));
  };
  // Live: an interface, rows as flows end, the count per class over time.
  const interfaces = await api("interfaces");
  const iface = el("select", {id: "interface"}, ...interfaces.map((i) => el("option", {value: i.name}, `${i.name} (${i.state})`)));
  const duration = el("input", {id: "duration", type: "number", min: 0, value: 0, size: 6});
  const idle = el("input", {id: "idle", type: "number", min: 1, value: 10, size: 6});
  const live = el("div", {id: "live"});
  let source = null, current = null;
  const stopLive = el("button", {id: "stop-live", disabled: "", onclick: () => current && api(`predictions/${current}/stop`, {}).catch((e) => alert(e.message))}, "Stop");
  const follow = (id) => {
    current = id;
    const state = el("p", {id: "live-state"}, "capturing ..."), chart = el("div", {class: "charts"});
    const counts = {}, times = [], table = el("table", {id: "live-flows"}, el("tr", {}, ...["t (s)", ...flowColumns].map((c) => el("th", {}, c))));
    const countsBox = el("div", {}, countsTable({}));
    live.replaceChildren(state, el("p", {}, el("a", {href: `/api/predictions/${id}/csv`, id: "live-csv"}, "CSV")), countsBox, chart, el("h2", {}, "Flows"), table);
    let pending = false;
    const redraw = () => {  // at most every half second: a busy interface decides many flows at once
      pending = false;
      countsBox.replaceChildren(countsTable(Object.fromEntries(Object.entries(counts).map(([c, list]) => [c, list.length]))));
      chart.replaceChildren(lineChart("flows per class over time (s)", Object.entries(counts).map(([c, list], i) =>
        ({name: c, color: palette[i % palette.length], points: list.map((t, n) => [t, n + 1])}))));
    };
    source = new EventSource(`/api/predictions/${id}/events`);
    source.addEventListener("flow", (e) => {
      const row = JSON.parse(e.data);
      (counts[row.class] = counts[row.class] || []).push(row.t);
      times.push(row.t);
      table.append(el("tr", {class: "flow"}, el("td", {}, row.t.toFixed(1)), ...flowRow(row).children));
      state.textContent = `capturing: ${times.length} flows decided`;
      if (!pending) { pending = true; setTimeout(redraw, 500); }
    });
    source.addEventListener("end", (e) => {
      const end = JSON.parse(e.data);
      source.close();
      stopLive.disabled = true;
      redraw();
      state.replaceChildren(el("span", {class: "status-" + end.state}, end.state),
        end.error ? `: ${end.error}` : `: ${end.flows} flows of ${end.packets} packets`);
    });
    stopLive.disabled = false;
  };
  const startLive = async () => {
    if (source) source.close();
    try {
      const body = {run: select.value, model: model.value, interface: iface.value, duration: Number(duration.value) || 0, idle_timeout: Number(idle.value) || null};
      follow((await api("predictions", body)).id);
    } catch (e) {
      live.replaceChildren(el("p", {class: "status-failed"}, e.message));
    }
  };
  view.replaceChildren(el("h1", {}, "Predict"), el("p", {}, "Run ", select, " model ", model),
    el("h2", {}, "A capture file"), el("p", {}, "Capture ", file, " ", el("button", {id: "predict", onclick: go}, "Predict")), result,
    el("h2", {}, "A live interface"),
    el("p", {}, "Interface ", iface, " for ", duration, " s (0: until stopped), a flow decided after ", idle,
      " s of silence or at its TCP teardown ", el("button", {id: "start-live", onclick: startLive}, "Start"), stopLive),
    live);
  closeView = () => source && source.close();
}

// --- Data -------------------------------------------------------------------------------------
// A table whose column headers sort it (numbers high to low first, text A to Z; again: reversed).
function sortableTable(id, columns, rows) {
  const table = el("table", {id, class: "sortable"});
  let key = null, descending = true;
  const fill = () => {
    const sorted = key === null ? rows : [...rows].sort((a, b) => {
      const x = a[key], y = b[key];
      const order = typeof x === "number" ? y - x : String(x).localeCompare(String(y));
      return descending ? order : -order;
    });
    table.replaceChildren(el("tr", {}, ...columns.map(([k, title]) => el("th", {class: k === key ? "sorted" : "", onclick: () => {
      descending = key === k ? !descending : true; key = k; fill();
    }}, title + (k === key ? (descending ? " ▾" : " ▴") : "")))),
      ...sorted.map((r) => el("tr", {class: "row"}, ...columns.map(([k]) => el("td", {}, r[k] === undefined ? "" : r[k])))));
  };
  fill();
  return table;
}

async function showData() {
  const [databases, sets] = await Promise.all([api("labels"), api("datasets")]);
  const db = el("select", {id: "labels-db"}, ...databases.map((d) => el("option", {value: d.id}, `${d.id} (${(d.bytes / 1e6).toFixed(1)} MB)`)));
  const apps = el("div", {id: "apps"});
  const showDb = async () => {
    if (!db.value) return apps.replaceChildren(el("p", {}, "No labels database in the workspace (make one with trafficid label --db FILE.db)."));
    const d = await api("labels?db=" + encodeURIComponent(db.value));
    apps.replaceChildren(
      sortableTable("applications", [["name", "application"], ["category", "category"], ["flows", "flows"], ["packets", "packets"], ["bytes", "bytes"], ["files", "files"]], d.applications),
      el("h3", {}, "Categories"),
      sortableTable("categories", [["name", "category"], ["flows", "flows"], ["packets", "packets"], ["bytes", "bytes"], ["files", "files"]], d.categories));
  };
  db.addEventListener("change", showDb);
  const detail = el("div", {id: "dataset"});
  const rows = sets.map((d) => ({...d, classes_n: d.classes.length, train: d.per_split.train || 0, validation: d.per_split.validation || 0,
    test: d.per_split.test || 0, shape_text: d.shape.join("×"), split_text: d.split + (d.folds ? `, ${d.folds} folds` : "")}));
  const table = sortableTable("datasets", [["id", "dataset"], ["extractor", "features"], ["shape_text", "shape"], ["classes_n", "classes"],
    ["rows", "rows"], ["train", "train"], ["validation", "validation"], ["test", "test"], ["split_text", "split"], ["balance", "balance"], ["inputs", "inputs"]], rows);
  table.addEventListener("click", (e) => {
    const tr = e.target.closest("tr.row");
    if (!tr) return;
    const d = rows.find((r) => r.id === tr.firstChild.textContent);
    if (!d) return;
    const splits = Object.keys(d.counts);
    detail.replaceChildren(el("h3", {}, d.id), el("table", {id: "dataset-classes"}, el("tr", {}, el("th", {}, "class"), ...splits.map((s) => el("th", {}, s))),
      ...d.classes.map((c, i) => el("tr", {}, el("td", {}, c), ...splits.map((s) => el("td", {}, d.counts[s][i]))))));
  });
  view.replaceChildren(el("h1", {}, "Data"), el("h2", {}, "Labels databases"), el("p", {}, db), apps,
    el("h2", {}, "Datasets"), el("p", {}, el("small", {}, "Click a dataset for its rows per class and split.")), table, detail);
  await showDb();
}

// --- Routing ----------------------------------------------------------------------------------
async function route() {
  closeView();
  closeView = () => {};
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/run/")) await showRun(decodeURIComponent(hash.slice(6)));
    else if (hash.startsWith("#/study/")) await showStudy(decodeURIComponent(hash.slice(8)));
    else if (hash === "#/new") await showNew();
    else if (hash === "#/predict") await showPredict();
    else if (hash === "#/data") await showData();
    else if (hash.startsWith("#/compare/")) await showCompare(decodeURIComponent(hash.slice(10)).split(","));
    else await showRuns();
  } catch (e) {
    view.replaceChildren(el("p", {class: "status-failed"}, e.message));
  }
}
window.addEventListener("hashchange", route);
route();
