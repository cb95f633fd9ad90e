// Results drawn over the image. Boxes come in pixels of the stored image; they are placed with
// percentages of its width and height, so they follow the displayed size (any thumbnail, any
// screen width) without recomputing. Masks are drawn on a canvas stretched over the image.

import { h } from "./dom.js";

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
  "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000"];

const percent = (value, total) => `${(100 * value / total).toFixed(4)}%`;

// One box: {x, y, width, height} in stored-image pixels.
export function boxElement(box, size, { kind, label }) {
  return h("div", {
    class: `box box-${kind}`,
    role: "img",
    "aria-label": label,
    title: label,
    style: {
      left: percent(box.x, size.width), top: percent(box.y, size.height),
      width: percent(box.width, size.width), height: percent(box.height, size.height),
    },
  }, h("span", { class: "box-label", "aria-hidden": "true" }, label));
}

// Predictions with boxes from every analysis: faces, and detections by any other analyzer or model.
export function boxesFrom(analyses) {
  const found = [];
  for (const [name, data] of Object.entries(analyses || {})) {
    for (const prediction of data.predictions || []) {
      if (!prediction.box) continue;
      const kind = name === "faces" || prediction.label === "face" ? "face" : "detection";
      const confidence = typeof prediction.confidence === "number" ? ` ${Math.round(prediction.confidence * 100)}%` : "";
      found.push({ kind, source: name, box: prediction.box, label: `${prediction.label || name}${confidence}` });
    }
  }
  return found;
}

// A segmentation mask (grey levels = segments, see each segment's mask_value) coloured by segment.
export function maskCanvas(result, size) {
  const canvas = h("canvas", { class: "mask", "aria-hidden": "true" });
  const segments = result.segments || [];
  const colourOf = new Map(segments.map((segment, index) => [segment.mask_value, PALETTE[index % PALETTE.length]]));
  const picture = new Image();
  picture.crossOrigin = "anonymous";
  picture.addEventListener("load", () => {
    canvas.width = picture.naturalWidth;
    canvas.height = picture.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(picture, 0, 0);
    try {
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
      const data = pixels.data;
      const rgb = new Map([...colourOf].map(([value, hex]) => [value, [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))]));
      for (let i = 0; i < data.length; i += 4) {
        const colour = rgb.get(data[i]);
        if (colour) {
          data[i] = colour[0]; data[i + 1] = colour[1]; data[i + 2] = colour[2]; data[i + 3] = 140;
        } else {
          data[i + 3] = 0;
        }
      }
      context.putImageData(pixels, 0, 0);
      canvas.dataset.coloured = "true";
    } catch {
      // Storage without CORS: show the grey mask itself, half transparent.
      canvas.classList.add("mask-plain");
    }
    canvas.dataset.ready = "true";
  });
  picture.src = result.url;
  canvas.style.aspectRatio = `${size.width} / ${size.height}`;
  return { canvas, legend: segments.map((segment, index) => ({ ...segment, colour: PALETTE[index % PALETTE.length] })) };
}
