// Datasets (labelled images for training): GET/POST /api/datasets, GET /api/datasets/{id}.
// On a deployment without them yet, the page says so instead of failing.

import { api, endpointMissing } from "./api.js";
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
  const entries = Object.entries(dataset.label_counts);
  if (!entries.length) return null;
  return h("ul", { class: "chips", "aria-label": "Labels" }, entries.map(([label, count]) => h("li", {},
    `${label}: ${formatNumber(count, 0)}`)));
}

export async function renderDatasets(main) {
  const answer = await fetchOrMissing(main, "Datasets", "Datasets", "api/datasets");
  if (answer === undefined) return null;
  const datasets = answer.items;
  const status = h("p", { role: "status", class: "form-status" });
  const form = h("form", { class: "card stack", "aria-labelledby": "new-dataset" },
    h("h2", { id: "new-dataset" }, "New dataset"),
    h("div", { class: "field" }, h("label", { for: "dataset-name" }, "Name"),
      h("input", { id: "dataset-name", name: "name", required: true, maxlength: "100" })),
    h("div", { class: "field" }, h("label", { for: "dataset-prefix" }, "Folder in storage"),
      h("input", { id: "dataset-prefix", name: "prefix", required: true, maxlength: "1000", placeholder: "datasets/<your id>/digits/" }),
      h("span", { class: "hint" }, "One folder per label inside it (upload files with POST /api/datasets/uploads or pixelake)")),
    h("div", { class: "field" }, h("label", { for: "dataset-description" }, "Description"),
      h("textarea", { id: "dataset-description", name: "description", rows: "2" })),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Create")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const created = await api("api/datasets", { method: "POST",
        body: { name: String(data.get("name")).trim(), prefix: String(data.get("prefix")).trim(),
          description: String(data.get("description")).trim() || undefined } });
      location.hash = `#/datasets/${created.id}`;
    } catch (error) {
      status.textContent = endpointMissing(error) ? "Creating datasets is not available yet." : error.message;
      status.className = "form-status is-error";
    }
  });
  main.replaceChildren(heading("Datasets"),
    datasets.length ? h("ul", { class: "cards" }, datasets.map((dataset) => h("li", { class: "card" },
      h("h2", {}, h("a", { href: `#/datasets/${dataset.id}` }, dataset.name)),
      dataset.description ? h("p", {}, dataset.description) : null,
      details([["Images", formatNumber(dataset.item_count, 0)],
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
  main.replaceChildren(
    h("p", { class: "breadcrumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dataset.name),
    heading(dataset.name),
    dataset.description ? h("p", {}, dataset.description) : null,
    details([["Images", formatNumber(dataset.item_count, 0)], ["Created", formatDate(dataset.created_at)],
      ["Source", Object.keys(dataset.source).length ? JSON.stringify(dataset.source) : null]]),
    labelCounts(dataset),
    h("p", {}, h("a", { href: `#/training?dataset=${encodeURIComponent(dataset.id)}` }, "Train a model on this dataset")),
  );
  return null;
}
