// Training jobs: the list, a form to start one, and one job with live progress, its metrics
// and its confusion matrix drawn as a picture.

import { api, endpointMissing } from "./api.js";
import { confusionMatrix } from "./charts.js";
import { announce, details, formatDate, formatNumber, h, heading, notice, poller, statusBadge } from "./dom.js";
import { fetchOrMissing } from "./datasets.js";

const BUSY = new Set(["pending", "running"]);

function progressOf(job) {
  return { percent: job.progress.percent, stage: job.progress.stage || job.status };
}

function progressBar(job, id) {
  const { percent, stage } = progressOf(job);
  return h("div", { class: "progress-line" },
    h("progress", { max: "100", value: String(Math.round(percent)), id, "aria-label": `Training job ${job.id}: ${stage}` }),
    h("span", {}, `${Math.round(percent)}% · ${stage}`));
}

const FIT_METHODS = [
  ["auto", "auto (in memory up to the sample, else incremental where possible)"],
  ["incremental", "incremental (partial_fit over the shards)"],
  ["sample", "on a stratified sample"],
];

// The form's fit options; an empty sample size is left to the server (PIXELAKE_TRAINING_SAMPLE_ITEMS).
function fitOptions(data) {
  const sample = String(data.get("fit_sample_items")).trim();
  return { method: data.get("fit_method"), ...(sample ? { sample_items: Number(sample) } : {}) };
}

function fitText(fit) {
  if (!fit || !fit.method) return null;
  return fit.sample_items ? `${fit.method}, sample of up to ${formatNumber(fit.sample_items)} items` : fit.method;
}

function startForm(datasets, preselect) {
  const status = h("p", { role: "status", class: "form-status" });
  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  const form = h("form", { class: "card stack", "aria-labelledby": "new-job" },
    h("h2", { id: "new-job" }, "Train a model"),
    datasets.length
      ? field("Dataset", h("select", { id: "job-dataset", name: "dataset_id", required: true },
        datasets.map((d) => h("option", { value: d.id, selected: String(d.id) === preselect }, d.name))))
      : field("Dataset id", h("input", { id: "job-dataset", name: "dataset_id", type: "number", min: "1", required: true, value: preselect || undefined })),
    field("Model name", h("input", { id: "job-model", name: "model_name", required: true, maxlength: "100", pattern: "[A-Za-z0-9_.\\-]+" })),
    // Suggestions only: the API validates against the algorithms and features it declares.
    field("Algorithm", h("input", { id: "job-algorithm", name: "algorithm", value: "logistic_regression", required: true, list: "algorithms" })),
    h("datalist", { id: "algorithms" }, ["logistic_regression", "linear_svm", "knn", "random_forest", "mlp", "sgd", "naive_bayes"].map((v) => h("option", { value: v }))),
    field("Features", h("input", { id: "job-features", name: "features", value: "hog", required: true, list: "feature-kinds" })),
    h("datalist", { id: "feature-kinds" }, ["hog", "color_histogram", "pixels"].map((v) => h("option", { value: v }))),
    field("Parameters (JSON)", h("textarea", { id: "job-params", name: "params", rows: "2", placeholder: "{}" })),
    // How a large dataset is fitted (the API's `fit`): auto fits in memory up to the sample size, then
    // incrementally where the algorithm has partial_fit, else on a stratified sample.
    field("Fit", h("select", { id: "job-fit-method", name: "fit_method" },
      FIT_METHODS.map(([value, text]) => h("option", { value }, text)))),
    field("Sample items", h("input", { id: "job-fit-sample", name: "fit_sample_items", type: "number", min: "1", step: "1", placeholder: "the server's default" })),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Start training")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let params = {};
    try {
      params = data.get("params").trim() ? JSON.parse(data.get("params")) : {};
    } catch {
      status.textContent = "Parameters must be JSON, e.g. {\"C\": 1.0}";
      status.className = "form-status is-error";
      return;
    }
    try {
      const job = await api("api/training-jobs", { method: "POST", body: {
        dataset_id: Number(data.get("dataset_id")), model_name: String(data.get("model_name")).trim(),
        algorithm: String(data.get("algorithm")).trim(), features: String(data.get("features")).trim(), params,
        fit: fitOptions(data) } });
      location.hash = `#/training/${job.id}`;
    } catch (error) {
      const allowed = error.body && error.body.error && error.body.error.allowed;
      status.textContent = error.message + (allowed ? ` (allowed: ${allowed.join(", ")})` : "");
      status.className = "form-status is-error";
    }
  });
  return form;
}

export async function renderTrainingJobs(main, params, query) {
  const answer = await fetchOrMissing(main, "Training", "Training jobs", "api/training-jobs");
  if (answer === undefined) return null;
  const datasets = await api("api/datasets").then((a) => a.items).catch((error) => {
    if (endpointMissing(error)) return [];
    throw error;
  });
  const table = h("div", { class: "table-wrap" });
  const draw = (jobs) => table.replaceChildren(jobs.length ? h("table", {},
    h("caption", { class: "visually-hidden" }, "Training jobs, newest first"),
    h("thead", {}, h("tr", {}, ["Job", "Model", "Algorithm", "Status", "Progress", "Started"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, jobs.map((job) => h("tr", {},
      h("td", {}, h("a", { href: `#/training/${job.id}` }, `#${job.id}`)),
      h("td", {}, job.model_name), h("td", {}, job.algorithm),
      h("td", {}, statusBadge(job.status)), h("td", {}, progressBar(job, `job-progress-${job.id}`)),
      h("td", {}, formatDate(job.started_at || job.created_at)))))) : notice("No training jobs yet."));
  const jobs = answer.items;
  draw(jobs);
  main.replaceChildren(heading("Training"), table, startForm(datasets, query.get("dataset")));
  const live = poller(async () => {
    const fresh = (await api("api/training-jobs")).items;
    draw(fresh);
    return fresh.some((job) => BUSY.has(job.status));
  }, 2000);
  if (jobs.some((job) => BUSY.has(job.status))) live.kick();
  return () => live.stop();
}

function metricsSection(metrics) {
  if (!metrics || !Object.keys(metrics).length) return null;
  const scalars = Object.entries(metrics).filter(([, value]) => typeof value === "number" || typeof value === "string");
  const matrix = metrics.confusion_matrix;
  const perClass = metrics.per_class;
  return h("section", { "aria-labelledby": "metrics-title" },
    h("h2", { id: "metrics-title" }, "Metrics"),
    details(scalars.map(([name, value]) => [name.replaceAll("_", " "), formatNumber(value, 3)])),
    matrix && matrix.labels && matrix.matrix ? confusionMatrix({ labels: matrix.labels, matrix: matrix.matrix }) : null,
    perClass && typeof perClass === "object" ? h("details", {}, h("summary", {}, "Per class"),
      h("pre", {}, JSON.stringify(perClass, null, 1))) : null);
}

export async function renderTrainingJob(main, { id }) {
  let job;
  try {
    job = await fetchOrMissing(main, "Training job", "Training jobs", `api/training-jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) {
      main.replaceChildren(heading("Training job not found"), notice(error.message, "error"));
      return null;
    }
    throw error;
  }
  if (job === undefined) return null;
  const body = h("div", {});
  const draw = () => body.replaceChildren(
    h("section", { "aria-labelledby": "progress-title" }, h("h2", { id: "progress-title" }, "Progress"),
      progressBar(job, "job-progress"), job.error ? notice(job.error, "error") : null),
    details([["Status", statusBadge(job.status)], ["Dataset", job.dataset_id ? h("a", { href: `#/datasets/${job.dataset_id}` }, `#${job.dataset_id}`) : null],
      ["Algorithm", job.algorithm], ["Features", job.features], ["Parameters", job.params ? JSON.stringify(job.params) : null],
      ["Fit", fitText(job.fit)], ["Fitted", job.metrics && job.metrics.fit ? job.metrics.fit.description : null],
      ["Model", job.model ? h("a", { href: `#/models/${encodeURIComponent(job.model.name)}` }, `${job.model.name} v${job.model.version}`) : job.model_name],
      ["Queued", formatDate(job.created_at)], ["Started", formatDate(job.started_at)], ["Finished", formatDate(job.finished_at)]]),
    metricsSection(job.metrics));
  draw();
  main.replaceChildren(
    h("p", { class: "breadcrumbs" }, h("a", { href: "#/training" }, "Training"), " / ", `#${job.id}`),
    heading(`Training job #${job.id}: ${job.model_name}`), body);
  const live = poller(async () => {
    const before = job.status;
    job = await api(`api/training-jobs/${job.id}`);
    draw();
    if (before !== job.status) announce(`Training job ${job.id} is ${job.status}`);
    return BUSY.has(job.status);
  }, 1500);
  if (BUSY.has(job.status)) live.kick();
  return () => live.stop();
}
