// Uploads straight to S3: POST /api/uploads gives a presigned POST for each file, then the
// browser POSTs the file to S3 with XMLHttpRequest (fetch has no upload progress).

import { api } from "./api.js";
import { announce, formatBytes, h } from "./dom.js";

const PARALLEL = 3;
const TYPES_BY_EXTENSION = {
  jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", gif: "image/gif",
  tif: "image/tiff", tiff: "image/tiff", bmp: "image/bmp",
  heic: "image/heic", heif: "image/heif", avif: "image/avif",
};

export function contentTypeOf(file) {
  if (file.type) return file.type;
  const extension = file.name.split(".").pop().toLowerCase();
  return TYPES_BY_EXTENSION[extension] || "application/octet-stream";
}

function s3Message(xhr) {
  const match = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || "");
  return match ? match[1] : `storage answered ${xhr.status}`;
}

export function postToStorage(presigned, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(presigned.fields)) form.append(name, value);
    form.append("file", file);  // S3 ignores every field after the file: it goes last
    const xhr = new XMLHttpRequest();
    xhr.open("POST", presigned.url);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(s3Message(xhr)));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload to storage failed (network or CORS)")));
    xhr.send(form);
  });
}

export async function uploadFile(file, onProgress) {
  const presigned = await api("api/uploads", {
    method: "POST",
    body: { filename: file.name, content_type: contentTypeOf(file), size: file.size },
  });
  await postToStorage(presigned, file, onProgress);
  onProgress(1);
  return presigned.image_id;
}

// The drop zone and the per-file progress list. `onUploaded(imageId)` runs after each file.
export function uploader({ onUploaded }) {
  const list = h("ul", { class: "upload-list", "aria-label": "Uploads" });
  const input = h("input", {
    type: "file", id: "file-input", class: "visually-hidden", multiple: true,
    // Extensions as well as types: some systems give HEIC files no type, and the picker hides them.
    accept: [...new Set(Object.values(TYPES_BY_EXTENSION))]
      .concat(Object.keys(TYPES_BY_EXTENSION).map((extension) => `.${extension}`)).join(","),
  });
  const zone = h("section", { class: "drop-zone", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload images"),
    h("p", { class: "drop-hint" }, "Drop image files here, or"),
    input,
    h("label", { for: "file-input", class: "button" }, "Choose images"),
    h("p", { class: "hint" }, "JPEG, PNG, WebP, GIF, TIFF or BMP. Files go straight to storage; each is processed when it arrives."),
    list);

  const queue = [];
  let active = 0;
  let done = 0;
  let total = 0;

  const pump = () => {
    while (active < PARALLEL && queue.length) {
      const job = queue.shift();
      active += 1;
      job().finally(() => {
        active -= 1;
        done += 1;
        if (done === total) announce(`${total} ${total === 1 ? "upload" : "uploads"} finished`);
        pump();
      });
    }
  };

  const add = (files) => {
    for (const file of files) {
      const progress = h("progress", { max: "100", value: "0" });
      const state = h("span", { class: "upload-state" }, "waiting");
      const item = h("li", { class: "upload-item" },
        h("span", { class: "upload-name" }, file.name),
        h("span", { class: "upload-size" }, formatBytes(file.size)),
        progress, state);
      progress.setAttribute("aria-label", `Upload of ${file.name}`);
      list.prepend(item);
      total += 1;
      queue.push(async () => {
        state.textContent = "uploading";
        item.classList.add("is-active");
        try {
          const imageId = await uploadFile(file, (fraction) => {
            progress.value = Math.round(fraction * 100);
          });
          state.textContent = "uploaded";
          item.classList.replace("is-active", "is-done");
          item.dataset.imageId = imageId;
          onUploaded(imageId, file);
        } catch (error) {
          state.textContent = `failed: ${error.message}`;
          item.classList.replace("is-active", "is-failed");
          announce(`The upload of ${file.name} failed: ${error.message}`);
        }
      });
    }
    announce(`Uploading ${files.length} ${files.length === 1 ? "file" : "files"}`);
    pump();
  };

  input.addEventListener("change", () => {
    if (input.files.length) add([...input.files]);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("is-dragging");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("is-dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragging");
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) add(files);
  });
  return zone;
}
