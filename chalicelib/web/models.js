// The model registry: models by name with their versions (GET /api/models, GET /api/models/{name}),
// and registering one from a URL.

import { api, endpointMissing } from "./api.js";
import { details, formatBytes, formatDate, formatNumber, h, heading, notice, statusBadge } from "./dom.js";
import { fetchOrMissing } from "./datasets.js";

function registerForm() {
  const status = h("p", { role: "status", class: "form-status" });
  const field = (label, control, hint) => h("div", { class: "field" }, h("label", { for: control.id }, label), control,
    hint ? h("span", { class: "hint" }, hint) : null);
  const form = h("form", { class: "card stack", "aria-labelledby": "register-model" },
    h("h2", { id: "register-model" }, "Register a model"),
    field("Name", h("input", { id: "model-name", name: "name", required: true, maxlength: "100" })),
    field("Artifact URL", h("input", { id: "model-url", name: "url", type: "url", required: true, placeholder: "https://…/model.onnx" }),
      "An ONNX file (or a scikit-learn model saved with skops) that the API fetches into storage. From a file on your disk: pixelake models register NAME --file model.onnx"),
    field("Framework", h("select", { id: "model-framework", name: "framework" }, ["onnx", "sklearn"].map((v) => h("option", { value: v }, v)))),
    field("Task", h("select", { id: "model-task", name: "task" }, ["classify", "detect", "segment", "embed"].map((v) => h("option", { value: v }, v)))),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Register")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    status.className = "form-status";
    status.textContent = "Registering…";
    try {
      const model = await api("api/models", { method: "POST", body: data });
      location.hash = `#/models/${encodeURIComponent(model.name)}`;
    } catch (error) {
      status.textContent = endpointMissing(error) ? "Registering models is not available on this deployment yet." : error.message;
      status.className = "form-status is-error";
    }
  });
  return form;
}

export async function renderModels(main) {
  const answer = await fetchOrMissing(main, "Models", "Models", "api/models");
  if (answer === undefined) return null;
  const models = answer.items;  // one entry per name: its version count, latest and active version
  main.replaceChildren(heading("Models"),
    models.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Registered models"),
      h("thead", {}, h("tr", {}, ["Name", "Latest version", "Active version", "Framework", "Task", "Registered"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, models.map((model) => {
        const active = model.active;
        return h("tr", {},
          h("td", {}, h("a", { href: `#/models/${encodeURIComponent(model.name)}` }, model.name)),
          h("td", {}, String(model.latest_version)),
          h("td", {}, active ? String(active.version) : statusBadge("inactive")),
          h("td", {}, active ? active.framework : "—"), h("td", {}, active ? active.task : "—"),
          h("td", {}, active ? formatDate(active.created_at) : "—"));
      })))) : notice("No models registered yet. Train one or register an ONNX file."),
    registerForm());
  return null;
}

export async function renderModel(main, { name }) {
  let model;
  try {
    model = await fetchOrMissing(main, "Model", "Models", `api/models/${encodeURIComponent(name)}`);
  } catch (error) {
    if (error.status === 404) {
      main.replaceChildren(heading("Model not found"), notice(error.message, "error"), h("a", { href: "#/models" }, "All models"));
      return null;
    }
    throw error;
  }
  if (model === undefined) return null;
  const versions = [...model.versions].sort((a, b) => b.version - a.version);
  main.replaceChildren(
    h("p", { class: "breadcrumbs" }, h("a", { href: "#/models" }, "Models"), " / ", model.name),
    heading(model.name),
    h("section", { "aria-labelledby": "versions-title" }, h("h2", { id: "versions-title" }, "Versions"),
      h("ol", { class: "cards", reversed: true }, versions.map((version) => h("li", { class: "card" },
        h("h3", {}, `Version ${version.version}`, " ", statusBadge(version.status)),
        version.description ? h("p", {}, version.description) : null,
        details([["Framework", version.framework], ["Task", version.task], ["Size", version.size_bytes ? formatBytes(version.size_bytes) : null],
          ["SHA-256", version.sha256 ? h("code", { class: "hash" }, version.sha256) : null],
          ["Labels", version.labels.length ? version.labels.slice(0, 30).join(", ") : null],
          ["Registered", formatDate(version.created_at)]]),
        Object.keys(version.metrics).length ? details(Object.entries(version.metrics)
          .filter(([, v]) => typeof v === "number").map(([k, v]) => [k.replaceAll("_", " "), formatNumber(v, 3)])) : null)))),
  );
  return null;
}
