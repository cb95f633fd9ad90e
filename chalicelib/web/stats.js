// The statistics dashboard: GET /api/stats (images by status, tasks by operation and status with
// p50/p95 durations, volume per day from the processing_statistics view) as charts.

import { api } from "./api.js";
import { barChart, columnChart } from "./charts.js";
import { formatNumber, h, heading, notice, poller } from "./dom.js";

const TASK_STATUSES = ["succeeded", "failed", "running", "pending"];

function tiles(stats) {
  const images = stats.images;
  const totalImages = Object.values(images).reduce((a, b) => a + b, 0);
  const tasks = stats.tasks;
  const totalTasks = tasks.reduce((sum, row) => sum + row.count, 0);
  const failed = tasks.filter((row) => row.status === "failed").reduce((sum, row) => sum + row.count, 0);
  const finished = tasks.filter((row) => row.status === "succeeded" || row.status === "failed").reduce((sum, row) => sum + row.count, 0);
  const items = [
    ["Images", formatNumber(totalImages, 0)],
    ["Ready", formatNumber(images.ready || 0, 0)],
    ["Tasks", formatNumber(totalTasks, 0)],
    ["Failure rate", finished ? `${((100 * failed) / finished).toFixed(1)}%` : "—"],
  ];
  return h("ul", { class: "tiles" }, items.map(([label, value]) => h("li", { class: "tile-stat" },
    h("span", { class: "tile-value" }, value), h("span", { class: "tile-label" }, label))));
}

function charts(stats) {
  const images = stats.images;
  const byOperation = new Map();
  for (const row of stats.tasks) {
    if (!byOperation.has(row.operation)) byOperation.set(row.operation, []);
    byOperation.get(row.operation).push(row);
  }
  const operations = [...byOperation.keys()].sort();
  const durations = operations
    .map((operation) => byOperation.get(operation).find((row) => row.status === "succeeded"))
    .filter((row) => row && row.p50_duration_ms !== null);
  const days = [...stats.per_day].sort((a, b) => String(a.day).localeCompare(String(b.day)));
  return [
    barChart({
      title: "Images by status",
      rows: Object.entries(images).map(([status, count]) => ({ label: status, parts: [{ name: status, value: count }] })),
    }),
    operations.length ? barChart({
      title: "Tasks by operation and status",
      series: TASK_STATUSES,
      rows: operations.map((operation) => ({
        label: operation,
        parts: TASK_STATUSES.map((status) => ({ name: status, value: (byOperation.get(operation).find((r) => r.status === status) || {}).count || 0 })),
      })),
    }) : notice("No tasks yet."),
    durations.length ? barChart({
      title: "Duration of succeeded tasks (median and 95th percentile, ms)",
      unit: " ms",
      series: ["p50", "p95 − p50"],
      rows: durations.map((row) => ({
        label: row.operation,
        parts: [{ name: "p50", value: Math.round(row.p50_duration_ms) },
          { name: "p95 − p50", value: Math.max(0, Math.round(row.p95_duration_ms - row.p50_duration_ms)) }],
      })),
    }) : null,
    days.length ? columnChart({
      title: "Tasks per day",
      points: days.map((row) => ({ label: String(row.day), value: Number(row.tasks) })),
    }) : notice("No activity recorded per day yet."),
  ];
}

export async function renderStats(main) {
  const body = h("div", { class: "dashboard" });
  const updated = h("p", { class: "hint", "aria-live": "off" });
  const draw = (stats) => {
    body.replaceChildren(tiles(stats), h("div", { class: "chart-grid" }, charts(stats)));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  };
  main.replaceChildren(heading("Statistics"), updated, body);
  draw(await api("api/stats"));
  const live = poller(async () => { draw(await api("api/stats")); return true; }, 15000);
  return () => live.stop();
}
