// Datasets (labelled images for training): GET/POST /api/datasets, GET /api/datasets/{id}.
// On a deployment without them yet, the page says so instead of failing.

import { api, endpointMissing, itemsOf } from "./api.js";
import { details, formatDate, formatNumber, h, heading, notice } from "./dom.js";

export function notAvailable(main, title, what) {
  main.replaceChildren(heading(title),
    notice(`${what} are not available on this deployment yet. This page works as soon as the API offers them.`));
}

export async function fetchOrMissing(main, title, what, path, options) {
  try {
    return await api(path, options);
  } catch (error) {
    if (endpointMissing(error)) {
      notAvailable(main, title, what);
      return undefined;
    }
    throw error;
  }
}

function labelCounts(dataset) {
  const counts = dataset.label_counts || dataset.labels || dataset.classes;
  if (!counts) return null;
  const entries = Array.isArray(counts) ? counts.map((label) => [typeof label === "object" ? label.label : label,
    typeof label === "object" ? label.count : null]) : Object.entries(counts);
  return h("ul", { class: "chips", "aria-label": "Labels" }, entries.map(([label, count]) => h("li", {},
    count === null || count === undefined ? String(label) : `${label}: ${formatNumber(count, 0)}`)));
}

export async function renderDatasets(main) {
  const answer = await fetchOrMissing(main, "Datasets", "Datasets", "api/datasets");
  if (answer === undefined) return null;
  const datasets = itemsOf(answer, "datasets");
  const status = h("p", { role: "status", class: "form-status" });
  const form = h("form", { class: "card stack", "aria-labelledby": "new-dataset" },
    h("h2", { id: "new-dataset" }, "New dataset"),
    h("div", { class: "field" }, h("label", { for: "dataset-name" }, "Name"),
      h("input", { id: "dataset-name", name: "name", required: true, maxlength: "100" })),
    h("div", { class: "field" }, h("label", { for: "dataset-description" }, "Description"),
      h("textarea", { id: "dataset-description", name: "description", rows: "2" })),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Create")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const created = await api("api/datasets", { method: "POST",
        body: { name: String(data.get("name")).trim(), description: String(data.get("description")).trim() || undefined } });
      location.hash = `#/datasets/${created.id}`;
    } catch (error) {
      status.textContent = endpointMissing(error) ? "Creating datasets is not available yet." : error.message;
      status.className = "form-status is-error";
    }
  });
  main.replaceChildren(heading("Datasets"),
    datasets.length ? h("ul", { class: "cards" }, datasets.map((dataset) => h("li", { class: "card" },
      h("h2", {}, h("a", { href: `#/datasets/${dataset.id}` }, dataset.name || `Dataset ${dataset.id}`)),
      dataset.description ? h("p", {}, dataset.description) : null,
      details([["Images", formatNumber(dataset.item_count ?? dataset.items_count ?? dataset.size ?? null, 0)],
        ["Created", formatDate(dataset.created_at)]]),
      labelCounts(dataset)))) : notice("No datasets yet."),
    form);
  return null;
}

export async function renderDataset(main, { id }) {
  const dataset = await fetchOrMissing(main, "Dataset", "Datasets", `api/datasets/${encodeURIComponent(id)}`).catch((error) => {
    if (error.status === 404) {
      main.replaceChildren(heading("Dataset not found"), notice(error.message, "error"));
      return undefined;
    }
    throw error;
  });
  if (dataset === undefined) return null;
  const items = itemsOf(dataset.items || [], "items");
  main.replaceChildren(
    h("p", { class: "breadcrumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dataset.name || `#${id}`),
    heading(dataset.name || `Dataset ${id}`),
    dataset.description ? h("p", {}, dataset.description) : null,
    details([["Images", formatNumber(dataset.item_count ?? items.length, 0)], ["Created", formatDate(dataset.created_at)],
      ["Source", dataset.source && Object.keys(dataset.source).length ? JSON.stringify(dataset.source) : null]]),
    labelCounts(dataset),
    items.length ? h("section", { "aria-labelledby": "items-title" }, h("h2", { id: "items-title" }, "Items"),
      h("ul", { class: "gallery" }, items.slice(0, 200).map((item) => h("li", { class: "tile" },
        item.image_id ? h("a", { href: `#/images/${item.image_id}`, class: "tile-link" },
          item.thumbnail_url ? h("img", { class: "tile-picture", src: item.thumbnail_url, alt: item.label }) : null,
          h("span", { class: "tile-caption" }, item.label))
          : h("span", { class: "tile-caption" }, `${item.label} · ${item.key || ""}`))))) : null,
    h("p", {}, h("a", { href: `#/training?dataset=${encodeURIComponent(dataset.id)}` }, "Train a model on this dataset")),
  );
  return null;
}
