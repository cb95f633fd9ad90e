// Charts as inline SVG: horizontal bars (optionally stacked), columns over days, and a heat map
// for confusion matrices. Each chart is a <figure> with a caption, an SVG that names itself for
// screen readers, and the numbers in a table behind a disclosure.

import { formatNumber, h, svg } from "./dom.js";

export const STATUS_COLOURS = {
  ready: "#15803d", succeeded: "#15803d", pending: "#a16207", processing: "#1d4ed8", running: "#1d4ed8",
  failed: "#b91c1c", cancelled: "#6b7280",
};
const SERIES = ["#1d4ed8", "#0f766e", "#b45309", "#7c3aed", "#be123c", "#4d7c0f"];

let chartId = 0;

function dataTable(caption, columns, rows) {
  return h("details", { class: "chart-data" }, h("summary", {}, "Show the numbers"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell, i) => i === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell))))))));
}

function figure(title, description, chart, table) {
  chartId += 1;
  const titleId = `chart-${chartId}-title`;
  const descId = `chart-${chartId}-desc`;
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-labelledby", `${titleId} ${descId}`);
  chart.prepend(svg("title", { id: titleId }, title), svg("desc", { id: descId }, description));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), chart, table);
}

// rows: [{label, parts: [{name, value}]}] — one bar per row, its parts stacked.
export function barChart({ title, rows, unit = "", series = null }) {
  const labelWidth = 150;
  const width = 600;
  const rowHeight = 30;
  const height = Math.max(1, rows.length) * rowHeight + 8;
  const total = (row) => row.parts.reduce((sum, part) => sum + (part.value || 0), 0);
  const max = Math.max(1, ...rows.map(total));
  const plot = width - labelWidth - 60;
  const names = series || [...new Set(rows.flatMap((row) => row.parts.map((part) => part.name)))];
  const colourOf = (name, index) => STATUS_COLOURS[name] || SERIES[index % SERIES.length];
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg bar-chart", preserveAspectRatio: "xMinYMin meet" });
  rows.forEach((row, r) => {
    const y = r * rowHeight + 4;
    chart.append(svg("text", { x: labelWidth - 8, y: y + rowHeight / 2, "text-anchor": "end", "dominant-baseline": "middle", class: "axis-label" },
      row.label.length > 22 ? `${row.label.slice(0, 21)}…` : row.label));
    let x = labelWidth;
    row.parts.forEach((part) => {
      const w = (part.value / max) * plot;
      if (w > 0) {
        chart.append(svg("rect", { x, y: y + 4, width: Math.max(w, 1), height: rowHeight - 10, rx: 2,
          fill: colourOf(part.name, names.indexOf(part.name)), class: "bar" },
        svg("title", {}, `${row.label}, ${part.name}: ${formatNumber(part.value)}${unit}`)));
      }
      x += w;
    });
    chart.append(svg("text", { x: x + 6, y: y + rowHeight / 2, "dominant-baseline": "middle", class: "value-label" },
      `${formatNumber(total(row), 0)}${unit}`));
  });
  const stacked = rows.some((row) => row.parts.length > 1);
  const legend = stacked && names.length > 1 ? h("ul", { class: "legend" }, names.map((name, i) => h("li", {},
    h("span", { class: "swatch swatch-small", style: { background: colourOf(name, i) }, "aria-hidden": "true" }), name))) : null;
  const description = rows.map((row) => `${row.label}: ${row.parts.map((p) => `${p.name} ${formatNumber(p.value)}${unit}`).join(", ")}`).join("; ");
  const table = dataTable(title, ["", ...names], rows.map((row) => [row.label,
    ...names.map((name) => formatNumber((row.parts.find((p) => p.name === name) || {}).value ?? null))]));
  const result = figure(title, description || "no data", chart, table);
  if (legend) result.insertBefore(legend, table);
  return result;
}

// points: [{label, value}] in order (days): columns with the first and last labels on the axis.
export function columnChart({ title, points, unit = "" }) {
  const width = 600;
  const height = 200;
  const bottom = 24;
  const left = 40;
  const max = Math.max(1, ...points.map((p) => p.value || 0));
  // At most 40 units a column: a single day is a column, not a wall.
  const step = Math.min(40, (width - left) / Math.max(1, points.length));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg column-chart" });
  chart.append(svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }));
  chart.append(svg("text", { x: left - 6, y: 12, "text-anchor": "end", class: "axis-label" }, formatNumber(max, 0)));
  chart.append(svg("text", { x: left - 6, y: height - bottom, "text-anchor": "end", class: "axis-label" }, "0"));
  points.forEach((point, i) => {
    const barHeight = ((point.value || 0) / max) * (height - bottom - 16);
    chart.append(svg("rect", { x: left + i * step + step * 0.15, y: height - bottom - barHeight, width: Math.max(step * 0.7, 1),
      height: barHeight, fill: SERIES[0], class: "bar" }, svg("title", {}, `${point.label}: ${formatNumber(point.value)}${unit}`)));
  });
  if (points.length) {
    chart.append(svg("text", { x: left, y: height - 6, class: "axis-label" }, points[0].label));
    if (points.length > 1) {
      chart.append(svg("text", { x: left + points.length * step, y: height - 6, "text-anchor": "end", class: "axis-label" }, points[points.length - 1].label));
    }
  }
  const description = points.map((p) => `${p.label}: ${formatNumber(p.value)}`).join("; ");
  return figure(title, description || "no data", chart, dataTable(title, ["", title], points.map((p) => [p.label, formatNumber(p.value)])));
}

// A confusion matrix: rows are the true labels, columns the predicted ones.
export function confusionMatrix({ title = "Confusion matrix", labels, matrix }) {
  const n = labels.length;
  const cell = Math.max(22, Math.min(48, Math.floor(480 / Math.max(1, n))));
  const longest = Math.max(1, ...labels.map((label) => String(label).length));
  const left = 34 + Math.min(120, 8 * longest);  // room for the row labels
  const top = 44;
  const width = left + n * cell + 10;
  const height = top + n * cell + 10;
  const max = Math.max(1, ...matrix.flat());
  // Drawn at its natural size (never scaled up), narrower screens scale it down.
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg confusion" });
  chart.append(svg("text", { x: left + (n * cell) / 2, y: 14, "text-anchor": "middle", class: "axis-title" }, "predicted"));
  chart.append(svg("text", { x: 14, y: top + (n * cell) / 2, "text-anchor": "middle", class: "axis-title",
    transform: `rotate(-90 14 ${top + (n * cell) / 2})` }, "true"));
  labels.forEach((label, i) => {
    chart.append(svg("text", { x: left + i * cell + cell / 2, y: top - 8, "text-anchor": "middle", class: "axis-label" }, String(label)));
    chart.append(svg("text", { x: left - 8, y: top + i * cell + cell / 2, "text-anchor": "end", "dominant-baseline": "middle", class: "axis-label" }, String(label)));
  });
  matrix.forEach((row, r) => row.forEach((value, c) => {
    const strength = value / max;
    const diagonal = r === c;
    const fill = diagonal ? `rgba(21, 128, 61, ${0.08 + 0.92 * strength})` : `rgba(185, 28, 28, ${value ? 0.12 + 0.88 * strength : 0.03})`;
    chart.append(svg("rect", { x: left + c * cell, y: top + r * cell, width: cell - 1, height: cell - 1, fill, class: "cell" },
      svg("title", {}, `true ${labels[r]}, predicted ${labels[c]}: ${value}`)));
    chart.append(svg("text", { x: left + c * cell + cell / 2, y: top + r * cell + cell / 2, "text-anchor": "middle",
      "dominant-baseline": "middle", class: strength > 0.55 ? "cell-label cell-label-dark" : "cell-label" }, String(value)));
  }));
  const correct = matrix.reduce((sum, row, i) => sum + (row[i] || 0), 0);
  const all = matrix.flat().reduce((a, b) => a + b, 0);
  const description = `${n} classes; ${correct} of ${all} test images on the diagonal (predicted correctly).`;
  return figure(title, description, chart, dataTable(title, ["true \\ predicted", ...labels.map(String)],
    matrix.map((row, r) => [String(labels[r]), ...row.map(String)])));
}
