"use strict";
// The operations list, refreshed from /api/operations every 2 s.
const statusSelect = document.getElementById("status");
const rows = document.querySelector("#operations tbody");
const count = document.getElementById("count");
const problem = document.getElementById("error");

statusSelect.value = new URLSearchParams(location.search).get("status") || "";
statusSelect.addEventListener("change", () => {
  const url = new URL(location.href);
  if (statusSelect.value) url.searchParams.set("status", statusSelect.value);
  else url.searchParams.delete("status");
  history.replaceState(null, "", url);
  refresh();
});

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`;
}

// Model and "symbols × timeframes", from the progress context, else the request.
function describe(op) {
  const context = op.context || {};
  if (context.kind === "training" || op.kind === "training") {
    const symbols = (context.symbols && context.symbols.length ? context.symbols : op.params.symbols) || [];
    const timeframes = (context.timeframes && context.timeframes.length ? context.timeframes : op.params.timeframes) || [];
    return [context.model_type || "–", `${symbols.join(", ") || "–"} × ${timeframes.join(", ") || "–"}`];
  }
  const symbol = context.symbol || op.params.symbol || "–";
  const timeframe = context.timeframe || op.params.timeframe || "–";
  return ["–", `${symbol} × ${timeframe}`];
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function render(page) {
  rows.replaceChildren();
  for (const op of page.operations) {
    const row = rows.insertRow();
    row.dataset.id = op.id;
    const link = document.createElement("a");
    link.href = "/operations/" + encodeURIComponent(op.id);
    link.textContent = op.id;
    row.insertCell().append(link);
    const status = op.stopping ? "stopping" : op.status;
    cell(row, status, "status " + status);
    cell(row, op.kind);
    const [model, pairs] = describe(op);
    cell(row, model);
    cell(row, pairs);
    cell(row, op.percentage.toFixed(1) + " %", "number");
    cell(row, duration(op.eta_seconds), "number");
    cell(row, duration(op.elapsed_seconds), "number");
  }
  count.textContent = `${page.operations.length} of ${page.total} shown, ${page.active} active`;
}

async function refresh() {
  const query = statusSelect.value ? "?status=" + encodeURIComponent(statusSelect.value) : "";
  try {
    const response = await fetch("/api/operations" + query, { credentials: "same-origin" });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      return;
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error);
    render(body);
    problem.textContent = "";
  } catch (error) {
    problem.textContent = "Cannot refresh: " + error.message;
  }
}

refresh();
setInterval(refresh, 2000);
