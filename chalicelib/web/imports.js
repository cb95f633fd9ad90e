// Bulk imports of images already in S3: a form to start one (a prefix of your storage, or a
// manifest of keys), the list with live progress, and one import with its counts, a Cancel
// button while it runs, and the files that failed, each with the reason
// (GET /api/imports/{id}/failures, a page at a time).

import { api } from "./api.js";
import { announce, details, formatDate, formatNumber, h, heading, notice, poller, statusBadge } from "./dom.js";
import { fetchOrMissing } from "./datasets.js";

const BUSY = new Set(["pending", "running"]);
const COUNTS = ["listed", "registered", "ready", "failed", "skipped"];

function progressBar(job, id) {
  const total = `${formatNumber(job.listed, 0)}${job.listing_done ? "" : "+"}`;
  const text = `${job.progress.percent}% · ${formatNumber(job.progress.finished, 0)} of ${total}`;
  return h("div", { class: "progress-line" },
    h("progress", { max: "100", value: String(job.progress.percent), id, "aria-label": `Import ${job.id}: ${text}` }),
    h("span", {}, text));
}

function sourceText(job) {
  return job.source.prefix || job.source.manifest_key || JSON.stringify(job.source);
}

function startForm() {
  const status = h("p", { role: "status", class: "form-status" });
  const field = (label, control, hint) => h("div", { class: "field" }, h("label", { for: control.id }, label), control,
    hint ? h("span", { class: "hint" }, hint) : null);
  const form = h("form", { class: "card stack", "aria-labelledby": "new-import" },
    h("h2", { id: "new-import" }, "Import images already in S3"),
    field("Folder in your storage", h("input", { id: "import-prefix", name: "prefix", maxlength: "1000", placeholder: "uploads/<your id>/archive/" }),
      "Every object under it, registered and ingested like an upload"),
    field("Or a manifest", h("textarea", { id: "import-manifest", name: "manifest", rows: "3", placeholder: "one key per line" }),
      "A CSV of keys (first column), or an S3 Inventory CSV"),
    h("div", { class: "field" }, h("label", {}, h("input", { type: "checkbox", id: "import-inventory", name: "inventory" }),
      " The manifest is an S3 Inventory CSV")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Start import")), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const prefix = String(data.get("prefix")).trim();
    const manifest = String(data.get("manifest")).trim();
    const body = prefix ? { prefix } : { manifest, format: data.get("inventory") ? "inventory" : "keys" };
    try {
      const job = await api("api/imports", { method: "POST", body });
      location.hash = `#/imports/${job.id}`;
    } catch (error) {
      status.textContent = error.message;
      status.className = "form-status is-error";
    }
  });
  return form;
}

export async function renderImports(main) {
  const answer = await fetchOrMissing(main, "Imports", "Imports", "api/imports");
  if (answer === undefined) return null;
  const table = h("div", { class: "table-wrap" });
  const draw = (jobs) => table.replaceChildren(jobs.length ? h("table", {},
    h("caption", { class: "visually-hidden" }, "Imports, newest first"),
    h("thead", {}, h("tr", {}, ["Import", "Source", "Status", "Progress", "Started"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, jobs.map((job) => h("tr", {},
      h("td", {}, h("a", { href: `#/imports/${job.id}` }, `#${job.id}`)),
      h("td", {}, h("code", {}, sourceText(job))),
      h("td", {}, statusBadge(job.status)), h("td", {}, progressBar(job, `import-progress-${job.id}`)),
      h("td", {}, formatDate(job.started_at || job.created_at)))))) : notice("No imports yet."));
  draw(answer.items);
  main.replaceChildren(heading("Imports"), table, startForm());
  const live = poller(async () => {
    const fresh = (await api("api/imports")).items;
    draw(fresh);
    return fresh.some((job) => BUSY.has(job.status));
  }, 2000);
  if (answer.items.some((job) => BUSY.has(job.status))) live.kick();
  return () => live.stop();
}

function failuresSection(job) {
  const list = h("ul", { class: "failures", id: "import-failures" });
  const more = h("button", { type: "button", class: "button", hidden: true }, "More failures");
  let cursor = null;
  const load = async () => {
    const page = await api(`api/imports/${job.id}/failures?limit=50${cursor ? `&cursor=${cursor}` : ""}`);
    list.append(...page.items.map((failure) => h("li", {}, h("code", {}, failure.key), `: ${failure.reason}`)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", load);
  return { section: h("section", { "aria-labelledby": "failures-title" },
    h("h2", { id: "failures-title" }, `Files that failed (${formatNumber(job.failed, 0)})`), list, more), load };
}

export async function renderImport(main, { id }) {
  let job;
  try {
    job = await fetchOrMissing(main, "Import", "Imports", `api/imports/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) {
      main.replaceChildren(heading("Import not found"), notice(error.message, "error"));
      return null;
    }
    throw error;
  }
  if (job === undefined) return null;
  const body = h("div", {});
  // POST /api/imports/{id}/cancel: no more partitions start; those running finish and are counted.
  const cancelButton = () => {
    const status = h("p", { role: "status", class: "form-status" });
    const button = h("button", { type: "button", class: "button", id: "cancel-import" }, "Cancel import");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        job = await api(`api/imports/${job.id}/cancel`, { method: "POST" });
        announce(`Import ${job.id} is cancelled`);
        await draw();
      } catch (error) {
        status.textContent = error.message;
        status.className = "form-status is-error";
        button.disabled = false;
      }
    });
    return h("div", { class: "actions" }, button, status);
  };
  const draw = async () => {
    const parts = [
      h("section", { "aria-labelledby": "progress-title" }, h("h2", { id: "progress-title" }, "Progress"),
        progressBar(job, "import-progress"), job.error ? notice(job.error, "error") : null),
      details([["Status", statusBadge(job.status)], ["Source", h("code", {}, sourceText(job))],
        ...COUNTS.map((name) => [name[0].toUpperCase() + name.slice(1), formatNumber(job[name], 0)]),
        ["Queued", formatDate(job.created_at)], ["Started", formatDate(job.started_at)], ["Finished", formatDate(job.finished_at)]]),
    ];
    if (BUSY.has(job.status)) parts.push(cancelButton());
    if (!BUSY.has(job.status) && job.failed) {
      const failures = failuresSection(job);
      parts.push(failures.section);
      await failures.load();
    }
    body.replaceChildren(...parts);
  };
  await draw();
  main.replaceChildren(
    h("p", { class: "breadcrumbs" }, h("a", { href: "#/imports" }, "Imports"), " / ", `#${job.id}`),
    heading(`Import #${job.id}`), body);
  const live = poller(async () => {
    const before = job.status;
    job = await api(`api/imports/${job.id}`);
    await draw();
    if (before !== job.status) announce(`Import ${job.id} is ${job.status.replaceAll("_", " ")}`);
    return BUSY.has(job.status);
  }, 1500);
  if (BUSY.has(job.status)) live.kick();
  return () => live.stop();
}
