// One image: the picture with its results drawn over it (faces, detections, segmentation),
// its facts, dominant colours, near-duplicates, the forms to run operations and analyses, and
// its tasks, kept live while anything is running.

import { api, endpointMissing } from "./api.js";
import { catalogueForm } from "./forms.js";
import { announce, details, formatBytes, formatDate, formatNumber, h, heading, notice, poller, statusBadge } from "./dom.js";
import { boxElement, boxesFrom, maskCanvas } from "./overlays.js";

const BUSY = new Set(["pending", "processing", "running"]);
const NEAR_DUPLICATE_BITS = 7;  // the API finds every neighbour this close through its band indexes

function largestThumbnail(image) {
  const thumbnails = [...image.thumbnails].sort((a, b) => b.width - a.width);
  return thumbnails[0];
}

function latestSegmentation(tasks) {
  const task = tasks.find((t) => t.operation === "segment" && t.status === "succeeded" && t.result && t.result.url);
  return task ? task.result : null;
}

function layerToggle(id, label, count, target) {
  const input = h("input", { type: "checkbox", id, checked: true });
  input.addEventListener("change", () => target.classList.toggle("is-hidden", !input.checked));
  return h("div", { class: "field-check" }, input, h("label", { for: id }, `${label} (${count})`));
}

function viewer(image, tasks, stableUrls) {
  const size = { width: image.width, height: image.height };
  const thumbnail = largestThumbnail(image);
  // Each GET presigns new URLs: keep the first one so a redraw does not reload the picture.
  if (thumbnail) thumbnail.url = stableUrls[thumbnail.width] ||= thumbnail.url;
  if (!thumbnail || !size.width) {
    return h("div", { class: "viewer" }, notice(image.status === "failed"
      ? `This image could not be processed: ${image.error || "unknown reason"}`
      : "The image is being processed; its preview appears here when it is ready."));
  }
  const boxes = boxesFrom(image.analyses);
  const faceLayer = h("div", { class: "layer layer-faces" });
  const detectionLayer = h("div", { class: "layer layer-detections" });
  boxes.forEach((found, index) => {
    const element = boxElement(found.box, size, { kind: found.kind, label: found.label });
    element.dataset.index = index;
    (found.kind === "face" ? faceLayer : detectionLayer).append(element);
  });
  const picture = h("img", {
    class: "subject", src: thumbnail.url, width: thumbnail.width, height: thumbnail.height,
    alt: `${image.filename || `Image ${image.id}`}${boxes.length ? `, with ${boxes.length} marked regions listed below` : ""}`,
  });
  const frame = h("div", { class: "frame", dataset: { width: size.width, height: size.height } }, picture);
  const toggles = [];
  const segmentation = latestSegmentation(tasks);
  let legend = null;
  if (segmentation) {
    const mask = maskCanvas(segmentation, size);
    const maskLayer = h("div", { class: "layer layer-mask" }, mask.canvas);
    frame.append(maskLayer);
    toggles.push(layerToggle("show-mask", "Segments", mask.legend.length, maskLayer));
    legend = h("ul", { class: "legend", "aria-label": "Segments" }, mask.legend.map((segment) => h("li", {},
      h("span", { class: "swatch swatch-small", style: { background: segment.colour }, "aria-hidden": "true" }),
      `${segment.name || `segment ${segment.label}`}: ${formatNumber(segment.pixel_percentage, 1)}%`)));
  }
  frame.append(detectionLayer, faceLayer);
  const faces = boxes.filter((b) => b.kind === "face");
  const detections = boxes.filter((b) => b.kind === "detection");
  if (faces.length) toggles.push(layerToggle("show-faces", "Faces", faces.length, faceLayer));
  if (detections.length) toggles.push(layerToggle("show-detections", "Detections", detections.length, detectionLayer));
  const listing = boxes.length ? h("ol", { class: "found-list" }, boxes.map((found) => h("li", {},
    `${found.label} (${found.source}) at x ${found.box.x}, y ${found.box.y}, ${found.box.width} × ${found.box.height} px`))) : null;
  return h("div", { class: "viewer" },
    frame,
    toggles.length ? h("fieldset", { class: "toggles" }, h("legend", {}, "Show on the image"), toggles) : null,
    legend, listing);
}

function swatches(properties) {
  const colours = (properties && properties.dominant_colors) || [];
  if (!colours.length) return null;
  return h("section", { "aria-labelledby": "colours-title" },
    h("h2", { id: "colours-title" }, "Dominant colours"),
    h("ul", { class: "swatches" }, colours.map((colour) => h("li", {},
      h("span", { class: "swatch", style: { background: colour.hex }, "aria-hidden": "true" }),
      h("span", {}, h("strong", {}, colour.css_name || colour.hex), ` ${colour.hex} · ${formatNumber(colour.pixel_percentage, 1)}%`)))));
}

function exifSection(image) {
  const exif = (image.metadata && image.metadata.exif) || (image.analyses && image.analyses.metadata && image.analyses.metadata.exif);
  if (!exif || !Object.keys(exif).length) return null;
  const flat = Object.entries(exif).map(([key, value]) => [key.replaceAll("_", " "),
    typeof value === "object" ? JSON.stringify(value) : String(value)]);
  return h("section", { "aria-labelledby": "exif-title" }, h("h2", { id: "exif-title" }, "Camera"), details(flat));
}

function factsSection(image) {
  const properties = image.analyses && image.analyses.properties;
  return h("section", { "aria-labelledby": "facts-title" },
    h("h2", { id: "facts-title" }, "Details"),
    details([
      ["Status", statusBadge(image.status)],
      ["Error", image.error],
      ["Format", image.format],
      ["Size", image.width ? `${image.width} × ${image.height} px` : null],
      ["File", formatBytes(image.size_bytes)],
      ["Uploaded", formatDate(image.created_at)],
      ["Faces", image.analyses && image.analyses.faces ? String(image.analyses.faces.count) : null],
      ["Brightness", properties ? formatNumber(properties.brightness, 1) : null],
      ["Contrast", properties ? formatNumber(properties.contrast, 1) : null],
      ["Sharpness", properties ? formatNumber(properties.sharpness, 1) : null],
      ["Perceptual hash", image.phash],
      ["SHA-256", image.sha256 ? h("code", { class: "hash" }, image.sha256) : null],
    ]));
}

async function nearDuplicates(image, container) {
  if (!image.phash) return;
  container.replaceChildren(h("h2", { id: "duplicates-title" }, "Near-duplicates"), h("p", { class: "hint" }, "Searching…"));
  // The API searches all your images on indexed bands of the perceptual hash.
  const answer = await api(`api/images/${image.id}/similar`, { query: { max_distance: NEAR_DUPLICATE_BITS } });
  const close = answer.items;
  const note = h("p", { class: "hint" },
    `Your images whose perceptual hash differs from this one in at most ${NEAR_DUPLICATE_BITS} of 64 bits.`);
  if (!close.length) {
    container.replaceChildren(container.firstChild, h("p", {}, "None found."), note);
    return;
  }
  container.replaceChildren(container.firstChild, h("ul", { class: "duplicates" }, close.map(({ image: other, distance: bits }) => {
    const thumbnail = [...other.thumbnails].sort((a, b) => a.width - b.width)[0];
    return h("li", {}, h("a", { href: `#/images/${other.id}` },
      thumbnail ? h("img", { src: thumbnail.url, alt: "", width: thumbnail.width, height: thumbnail.height, loading: "lazy" }) : null,
      h("span", {}, `${other.filename || `Image ${other.id}`} · ${bits === 0 ? "identical hash" : `${bits} bits apart`}`)));
  })), note);
}

function resultSummary(task) {
  if (task.status === "failed") return h("span", { class: "error-text" }, task.error || "failed");
  const result = task.result;
  if (!result) return "—";
  if (result.url && task.operation !== "segment") {
    return h("a", { href: result.url, class: "result-link", target: "_blank", rel: "noopener" },
      h("img", { src: result.url, alt: `Result of ${task.operation}`, loading: "lazy" }),
      h("span", {}, `${result.width} × ${result.height} ${result.format || ""}`));
  }
  const parts = [];
  if (typeof result.count === "number") parts.push(`${result.count} found`);
  if (result.predictions && result.predictions.length && !result.faces) {
    const best = result.predictions[0];
    parts.push(`${best.label}${typeof best.confidence === "number" ? ` ${Math.round(best.confidence * 100)}%` : ""}`);
  }
  if (result.segments) parts.push(`${result.segments.length} segments (drawn on the image)`);
  if (result.phash) parts.push(`hash ${result.phash}`);
  if (typeof result.brightness === "number") parts.push(`brightness ${result.brightness}`);
  const raw = h("details", {}, h("summary", {}, parts.length ? parts.join(" · ") : "result"),
    h("pre", {}, JSON.stringify(result, null, 1)));
  return raw;
}

function tasksTable(tasks) {
  if (!tasks.length) return notice("Nothing has run on this image yet.");
  return h("div", { class: "table-wrap" }, h("table", { class: "tasks" },
    h("caption", { class: "visually-hidden" }, "Operations and analyses run on this image, newest first"),
    h("thead", {}, h("tr", {}, ["Task", "What", "Status", "Took", "Result"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, tasks.map((task) => h("tr", { dataset: { taskId: task.id, status: task.status } },
      h("td", {}, `#${task.id}`),
      h("td", {}, task.operation, h("span", { class: "hint" }, ` ${task.kind}`)),
      h("td", {}, statusBadge(task.status)),
      h("td", {}, task.duration_ms === null || task.duration_ms === undefined ? "—" : `${task.duration_ms} ms`),
      h("td", {}, resultSummary(task)))))));
}

export async function renderImage(main, { id }) {
  let image;
  try {
    image = await api(`api/images/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404 || error.status === 400) {
      main.replaceChildren(heading("Image not found"), notice(error.message, "error"), h("a", { href: "#/" }, "Back to the images"));
      return null;
    }
    throw error;
  }
  const [catalogue, models] = await Promise.all([
    api("api/operations"),
    api("api/models").then((answer) => answer.items).catch((error) => {
      if (endpointMissing(error)) return [];
      throw error;
    }),
  ]);
  let tasks = (await api(`api/images/${image.id}/tasks`, { query: { limit: 50 } })).items;

  const viewerSlot = h("section", { class: "viewer-slot", "aria-label": "Image and results" });
  const facts = h("div", { class: "facts-slot" });
  const colours = h("div", { class: "colours-slot" });
  const exif = h("div", { class: "exif-slot" });
  const duplicates = h("section", { class: "duplicates-slot", "aria-labelledby": "duplicates-title" });
  const tasksSlot = h("div", { class: "tasks-slot" });
  const title = heading(image.filename || `Image ${image.id}`);

  const stableUrls = {};
  const draw = () => {
    viewerSlot.replaceChildren(viewer(image, tasks, stableUrls));
    facts.replaceChildren(factsSection(image));
    colours.replaceChildren(swatches(image.analyses && image.analyses.properties) || "");
    exif.replaceChildren(exifSection(image) || "");
    tasksSlot.replaceChildren(tasksTable(tasks));
  };

  const refresh = async () => {
    const before = new Map(tasks.map((t) => [t.id, t.status]));
    const imageBefore = image.status;
    [image, tasks] = await Promise.all([
      api(`api/images/${image.id}`),
      api(`api/images/${image.id}/tasks`, { query: { limit: 50 } }).then((answer) => answer.items),
    ]);
    const changed = imageBefore !== image.status || tasks.some((t) => before.get(t.id) !== t.status);
    for (const task of tasks) {
      const was = before.get(task.id);
      if (was && was !== task.status && !BUSY.has(task.status)) announce(`${task.operation} ${task.status}`);
    }
    if (imageBefore !== image.status) {
      announce(`The image is ${image.status}`);
      if (image.status === "ready") nearDuplicates(image, duplicates).catch(() => {});
    }
    if (changed) draw();
    return BUSY.has(image.status) || tasks.some((t) => BUSY.has(t.status));
  };
  const live = poller(refresh, 1000);

  const submitted = (task) => {
    tasks = [task, ...tasks.filter((t) => t.id !== task.id)];
    draw();
    live.kick();
    return `Task #${task.id} (${task.operation}) queued: its result appears under Tasks below.`;
  };
  const operationForm = catalogueForm({
    id: "run-operation", legend: "Run an operation", submitLabel: "Run",
    groups: [{ label: "Operations", entries: catalogue.operations }],
    onSubmit: async (entry, params) => submitted(await api("api/process", {
      method: "POST", body: { image_id: image.id, operation: entry.name, params } })),
  });
  // A name runs its active version: names without one cannot be chosen.
  const modelEntries = models.filter((model) => model.active).map(({ name, active }) => ({
    name, description: active.description || `${active.framework} ${active.task} model, version ${active.version}`,
    params: { properties: {} },
  }));
  const analysisForm = catalogueForm({
    id: "run-analysis", legend: "Analyze", submitLabel: "Analyze",
    groups: [{ label: "Built-in analyzers", entries: catalogue.analyzers }, { label: "Your models", entries: modelEntries }],
    onSubmit: async (entry, params) => submitted(await api("api/analyze", {
      method: "POST", body: { image_id: image.id, model: entry.name, params } })),
  });

  draw();
  main.replaceChildren(
    h("p", { class: "breadcrumbs" }, h("a", { href: "#/" }, "Images"), " / ", `#${image.id}`),
    title,
    h("div", { class: "image-layout" },
      viewerSlot,
      h("aside", { class: "image-side", "aria-label": "About this image" }, facts, colours, duplicates, exif)),
    h("section", { class: "run", "aria-labelledby": "run-title" },
      h("h2", { id: "run-title" }, "Run on this image"),
      h("div", { class: "columns" }, operationForm.form, analysisForm.form)),
    h("section", { "aria-labelledby": "tasks-title" }, h("h2", { id: "tasks-title" }, "Tasks"), tasksSlot),
  );
  if (image.status === "ready") nearDuplicates(image, duplicates).catch(() => {});
  live.kick();
  return () => live.stop();
}
