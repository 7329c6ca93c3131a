// The web application in a real browser (Debian's chromium through playwright-core): open the
// page with its token, start the quickstart from the New run form, watch the loss curve get
// points while it trains, Stop, Resume, see it done and open its report. Screenshots of each
// step go to OUT_DIR (the test's artefacts).
// Then Predict: upload a capture and see its flows classified, and classify lo live (rows as
// flows end, then Stop); Compare: the runs picked on the Runs page (the other one an ensemble
// trained before the server started), their models side by side.
// usage: node web_app.mjs URL OUT_DIR CAPTURE
import http from "node:http";
import {chromium} from "playwright-core";

const [url, out, capture] = process.argv.slice(2);
const shot = (page, name) => page.screenshot({path: `${out}/${name}.png`, fullPage: true});
const step = (what) => console.log(`web_app: ${what}`);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({viewport: {width: 1200, height: 900}});
  page.on("pageerror", (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  await page.goto(url);
  await page.waitForSelector("table#runs");
  await shot(page, "1-runs");
  step("runs page");

  await page.click("text=New run");
  await page.waitForSelector("#experiment option[value='experiments/quickstart.toml']", {state: "attached"});
  await page.selectOption("#experiment", "experiments/quickstart.toml");
  await page.waitForSelector("#diagnostics li:text('valid')");
  await page.waitForSelector("#settings input[name='train.epochs']");
  // The editor checks as it is typed: a bad value is marked at its line, then fixed.
  const text = await page.inputValue("#editor");
  const line = text.split("\n").findIndex((l) => l.startsWith("epochs = ")) + 1;
  await page.fill("#editor", text.replace(/^epochs = \d+/m, 'epochs = "many"'));
  await page.waitForSelector("#diagnostics li.error:has-text('train.epochs')");
  const marked = await page.$$eval("#gutter span.error", (spans) => spans.map((s) => Number(s.textContent)));
  if (!marked.includes(line)) throw new Error(`the gutter marks lines ${marked}, not ${line}`);
  await shot(page, "2-editor-diagnostic");
  await page.fill("#editor", text);
  await page.waitForSelector("#diagnostics li:text('valid')");
  // The form: a setting changed becomes its override line.
  await page.fill("#settings input[name='train.epochs']", "7");
  await page.dispatchEvent("#settings input[name='train.epochs']", "change");
  if (!(await page.inputValue("#overrides")).includes("train.epochs=7")) throw new Error("the form wrote no override");
  step(`editor: a bad value marked at line ${line}, then valid; the form wrote train.epochs=7`);
  await page.fill("#overrides", ["capture.synth.flows_per_app=6", "evaluate.synth.flows_per_app=3",
    "models={ mlp = { layers = [64, 64] } }", "train.epochs=300", "train.patience=0"].join("\n"));
  await page.click("#validate");
  await page.waitForSelector("#diagnostics li:text('valid')");
  await shot(page, "2-new-run");
  await page.click("#start");
  await page.waitForURL(/#\/run\/runs\//);
  step(`started ${page.url()}`);

  // The curve gets points as epochs end.
  const points = () => page.$$eval("#charts polyline.series", (lines) => Math.max(0, ...lines.map((l) => l.getAttribute("points").trim().split(" ").length)));
  await page.waitForFunction(() => { const l = document.querySelector("#charts polyline.series"); return l && l.getAttribute("points").trim().split(" ").length >= 3; }, null, {timeout: 120000});
  const before = await points();
  await page.waitForFunction((n) => { const l = document.querySelector("#charts polyline.series"); return l.getAttribute("points").trim().split(" ").length > n; }, before, {timeout: 60000});
  step(`the curve grew from ${before} to ${await points()} points while training`);
  await shot(page, "3-training");

  await page.click("#stop");
  await page.waitForSelector("#status .status-interrupted", {timeout: 60000});
  const stoppedAt = await points();
  step(`stopped after ${stoppedAt} epochs`);
  await shot(page, "4-stopped");

  await page.click("#resume");
  await page.waitForSelector("#status .status-done", {timeout: 180000});
  await page.waitForSelector("#report");
  const finished = await points();
  if (finished !== 300) throw new Error(`the curve ends with ${finished} points, not the 300 epochs`);
  step(`resumed and done: ${finished} points`);
  await shot(page, "5-done");

  const [report] = await Promise.all([page.waitForEvent("popup"), page.click("#report")]);
  await report.waitForSelector(".headline");
  await shot(report, "6-report");
  await report.close();
  await page.bringToFront();
  step("report opened");

  await page.click("text=Predict");
  await page.waitForSelector("#predict-run option", {state: "attached"});
  await page.waitForSelector("#predict-model option[value='mlp']", {state: "attached"});
  await page.selectOption("#predict-model", "mlp");  // by name; the default is the run's best
  await page.setInputFiles("#capture", capture);
  await page.click("#predict");
  await page.waitForSelector("#flows tr.flow", {timeout: 60000});
  const flows = await page.$$eval("#flows tr.flow", (rows) => rows.length);
  if (flows < 10) throw new Error(`only ${flows} flows classified`);
  await shot(page, "7-predict");
  step(`predict: ${flows} flows of the uploaded capture classified`);

  // Live on lo: requests made here (one connection each) are TCP flows the model decides at
  // their teardown; their rows appear while the capture goes on, then Stop ends it.
  await page.selectOption("#interface", "lo");
  await page.fill("#idle", "1");
  await page.click("#start-live");
  const api = new URL("/api/interfaces", url);
  let traffic = true;
  const requests = (async () => {
    while (traffic) {
      await new Promise((done) => http.get(api, {agent: false}, (r) => { r.resume(); r.on("end", done); }).on("error", done));
      await new Promise((done) => setTimeout(done, 150));
    }
  })();
  await page.waitForSelector("#live-flows tr.flow", {timeout: 60000});
  await page.waitForSelector("#live-state:text('capturing')");
  await shot(page, "8-live");
  await page.click("#stop-live");
  await page.waitForSelector("#live-state .status-done", {timeout: 30000});
  traffic = false;
  await requests;
  const live = await page.$$eval("#live-flows tr.flow", (rows) => rows.length);
  step(`live: ${live} flows of lo decided while capturing, then stopped`);

  await page.click("text=Runs");
  await page.waitForSelector("#runs input.pick");
  const picks = page.locator("#runs input.pick");  // this run and the ensemble's (the list redraws every 3 s)
  await picks.nth(1).waitFor();
  for (let i = 0; i < await picks.count(); ++i) await picks.nth(i).check();
  await page.click("#compare");
  await page.waitForSelector("#compared tr.compared");
  const best = await page.$$eval("#compared tr.compared td:nth-child(2)", (cells) => cells.map((c) => c.textContent));
  if (!best.some((c) => c.endsWith("(best)"))) throw new Error(`no best model in the comparison: ${best}`);
  // The ensembles' models name their members and their range, each scored alone on the unseen
  // captures; the blend names the models it averages.
  const members = await page.$$eval("#compared small.members", (cells) => cells.map((c) => c.textContent));
  if (members.length !== 2 || !members.every((m) => /^ensemble of 2; members \d\.\d\d–\d\.\d\d unseen$/.test(m)))
    throw new Error(`the ensembles' members are not shown as such: ${members}`);
  const blends = await page.$$eval("#compared small.blend", (cells) => cells.map((c) => c.textContent));
  if (blends.length !== 1 || blends[0] !== "mean of gbdt, mlp") throw new Error(`the blend is not shown as such: ${blends}`);
  await page.frameLocator("#comparison-page").locator("h2:text('What differs')").waitFor();
  await shot(page, "9-compare");
  step(`compare: ${best.join(", ")}`);

  // Data: the labels database's applications, sorted by a header; a dataset's rows per class.
  await page.click("text=Data");
  await page.waitForSelector("#applications tr.row");
  await page.click("#applications th:text('packets')");
  const packets = await page.$$eval("#applications tr.row td:nth-child(4)", (cells) => cells.map((c) => Number(c.textContent)));
  if (packets.some((p, i) => i > 0 && p > packets[i - 1])) throw new Error(`not sorted by packets: ${packets}`);
  await page.click("#datasets tr.row");
  await page.waitForSelector("#dataset-classes td");
  await shot(page, "10-data");
  step(`data: ${packets.length} applications sorted by packets, a dataset's classes`);

  // A study from the New run page: three trials, their curves, the best configuration run.
  await page.click("text=New run");
  await page.waitForSelector("#experiment option[value='experiments/study.toml']", {state: "attached"});
  await page.selectOption("#experiment", "experiments/study.toml");
  // Not valid as it is (it trains three models): the overrides make it one, checked before it starts.
  await page.waitForSelector("#diagnostics li.error:has-text('a study tunes one model')");
  await page.fill("#overrides", ["capture.synth.flows_per_app=6", "evaluate.synth.flows_per_app=3",
    "models={ mlp = { layers = [32] } }", "train.epochs=15", "train.patience=0"].join("\n"));
  await page.click("#validate");
  await page.waitForSelector("#diagnostics li:text('valid')");
  await page.click("#start-study");
  await page.waitForURL(/#\/study\/studies\//);
  await page.waitForFunction(() => document.querySelectorAll("#trial-table tr.trial.status-done").length === 3 &&
    document.querySelector("#study-status").textContent.startsWith("not running"), null, {timeout: 180000});
  await page.waitForSelector("#best-config");
  const curves = await page.$$eval("#study-chart polyline.series", (lines) => lines.length);
  if (curves !== 3) throw new Error(`${curves} trial curves, not 3`);
  await shot(page, "11-study");
  step("study: 3 trials done, their curves, the best configuration");
  await page.click("#run-best");
  await page.waitForURL(/#\/run\/runs\//);
  await page.waitForSelector("#status .status-done", {timeout: 180000});
  step(`the study's best configuration ran: ${page.url()}`);
} finally {
  await browser.close();
}
