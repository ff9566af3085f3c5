"use strict";
// One operation, live: its event stream (/api/operations/ID/events) moves
// the bars; each finished epoch redraws the chart from chart.svg.
const id = decodeURIComponent(location.pathname.split("/").pop());
const api = "/api/operations/" + encodeURIComponent(id);
const $ = (name) => document.getElementById(name);
let epochsSeen = 0;
let chartDrawn = -1;
let chartLoading = false;

$("title").textContent = id;

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  return h > 0 ? `${h}h ${m}m ${s}s` : m > 0 ? `${m}m ${s}s` : `${s}s`;
}
const fixed = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const percent = (value) => (value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %");

function bar(name, step) {
  $(name + "-text").textContent = step ? ` ${step.current}/${step.total}` : " –";
  $(name + "-bar").max = step ? Math.max(step.total, 1) : 1;
  $(name + "-bar").value = step ? step.current : 0;
}

function steps(step, finished) {
  const list = $("steps");
  list.replaceChildren();
  if (!step) return;
  for (let index = 1; index <= step.total; index++) {
    const item = document.createElement("li");
    item.textContent = `[${index}/${step.total}]`;
    if (index < step.current || (finished && index === step.current)) item.className = "done";
    else if (index === step.current) item.className = "current";
    list.append(item);
  }
}

function show(op) {
  const terminal = ["completed", "failed", "cancelled"].includes(op.status);
  const status = op.stopping ? "stopping" : op.status;
  $("status").textContent = status;
  $("status").className = "status " + status;
  $("message").textContent = op.error ? `${op.message} (${op.error})` : op.message;
  steps(op.step, op.status === "completed");
  const training = op.context && op.context.kind === "training" ? op.context : {};
  bar("epoch", training.epoch);
  bar("batch", training.batch);
  $("overall-text").textContent = ` ${op.percentage.toFixed(1)} %`;
  $("overall-bar").value = op.percentage;
  $("samples").textContent = fixed(training.samples_per_second, 0);
  $("elapsed").textContent = duration(op.elapsed_seconds);
  $("eta").textContent = terminal ? "–" : duration(op.eta_seconds);
  $("checkpoint").textContent = op.checkpoint
    ? `epoch ${op.checkpoint.epoch}, batch ${op.checkpoint.batch}`
    : "–";
  $("cancel").hidden = terminal || op.stopping;
  $("resume").hidden = !op.resumable;
  if (op.result && op.kind === "training") report(op.result);
}

function report(summary) {
  const quality = summary.quality || {};
  $("report").hidden = false;
  $("verdict").textContent = quality.verdict || "–";
  $("kappa").textContent = fixed(quality.kappa, 3);
  $("balanced-accuracy").textContent = percent(quality.balanced_accuracy);
  const baseline = summary.metrics && summary.metrics.baseline;
  $("accuracy").textContent = `${percent(summary.metrics && summary.metrics.accuracy)} (${
    baseline ? `always ${baseline.class}: ${percent(baseline.accuracy)}` : "–"})`;
  $("gap").textContent = percent(quality.val_test_gap);
  $("best-epoch").textContent = summary.report ? `${summary.report.best_epoch} of ${summary.report.epochs_run}` : "–";
  const classes = ((summary.metrics && summary.metrics.per_class) || []).map((row) => row.class);
  const labels = $("labels");
  labels.replaceChildren();
  const head = labels.insertRow();
  for (const name of ["split", ...classes]) head.insertCell().textContent = name;
  for (const [split, counts] of Object.entries(quality.labels || {})) {
    const row = labels.insertRow();
    row.insertCell().textContent = split;
    for (const value of counts) row.insertCell().textContent = value;
  }
  const warnings = $("warnings");
  warnings.replaceChildren();
  for (const warning of quality.warnings || []) {
    const item = document.createElement("li");
    item.textContent = warning;
    warnings.append(item);
  }
  if (!warnings.children.length) warnings.append(Object.assign(document.createElement("li"), { textContent: "none" }));
  const phases = $("phases");
  phases.replaceChildren();
  for (const [phase, seconds] of Object.entries(summary.phase_seconds || {})) {
    const row = phases.insertRow();
    row.insertCell().textContent = phase.replaceAll("_", " ");
    row.insertCell().textContent = seconds.toFixed(2) + " s";
  }
  $("model-path").textContent = summary.model_path || "–";
}

// One chart request at a time; epochs that finish meanwhile are drawn by the next.
async function drawChart() {
  if (chartLoading || chartDrawn === epochsSeen) return;
  chartLoading = true;
  const wanted = epochsSeen;
  try {
    const response = await fetch(api + "/chart.svg", { credentials: "same-origin" });
    if (response.ok) {
      $("chart").innerHTML = await response.text();
      chartDrawn = wanted;
    }
  } finally {
    chartLoading = false;
  }
  if (chartDrawn !== epochsSeen) drawChart();
}

async function act(action) {
  $("action-error").textContent = "";
  const response = await fetch(`${api}/${action}`, { method: "POST", credentials: "same-origin" });
  const body = await response.json();
  if (!response.ok) {
    $("action-error").textContent = body.error;
    return;
  }
  if (action === "resume") location.href = "/operations/" + encodeURIComponent(body.id);
  else show(body);
}
$("cancel").addEventListener("click", () => act("cancel"));
$("resume").addEventListener("click", () => act("resume"));

const events = new EventSource(api + "/events");
events.addEventListener("epoch", (event) => {
  epochsSeen = JSON.parse(event.data).epoch;
  $("epochs-run").textContent = epochsSeen;
  drawChart();
});
events.addEventListener("snapshot", (event) => show(JSON.parse(event.data)));
events.addEventListener("end", (event) => {
  // Closed here, or the browser would reconnect and replay it.
  events.close();
  const op = JSON.parse(event.data);
  show(op);
  epochsSeen = op.epochs_run;
  $("epochs-run").textContent = epochsSeen;
  chartDrawn = -1;
  if (op.kind === "training") drawChart();
  document.body.dataset.finished = op.status;
});
events.onerror = () => {
  if (events.readyState === EventSource.CLOSED) $("error").textContent = "The event stream closed; reload the page.";
};
