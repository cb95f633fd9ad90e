// Building DOM nodes without innerHTML (text from the API is never parsed as markup), and
// the few formatting rules every view shares.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "style" && typeof value === "object") {
      Object.assign(node.style, value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Screen readers hear status changes through one polite live region.
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes repeated identical messages audible too.
  setTimeout(() => { region.textContent = message; }, 50);
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatNumber(value, digits = 2) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString() : value.toFixed(digits);
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

// A view's heading: focused after navigation so keyboard and screen-reader users start there.
export function heading(text, level = 1) {
  return h(`h${level}`, { tabindex: level === 1 ? "-1" : undefined, class: level === 1 ? "view-title" : undefined }, text);
}

export function notice(text, kind = "info") {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : undefined }, text);
}

// A definition list from [term, value] pairs, skipping empty values.
export function details(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

// Poll `step` every `interval` ms while it returns true and the view is shown; `kick()` polls now
// (and keeps polling) after the view started something new.
export function poller(step, interval) {
  let timer = null;
  let stopped = false;
  let running = false;
  let rerun = false;
  const run = async () => {
    if (stopped) return;
    if (running) { rerun = true; return; }
    running = true;
    let again = false;
    try {
      again = await step();
    } catch (error) {
      again = true;  // a failed poll (network blip) is retried at the next tick
      console.warn("poll failed", error);
    } finally {
      running = false;
    }
    if (stopped) return;
    if (rerun) { rerun = false; run(); return; }
    if (again) timer = setTimeout(run, interval);
  };
  timer = setTimeout(run, interval);
  return {
    stop() { stopped = true; clearTimeout(timer); },
    kick() { clearTimeout(timer); run(); },
  };
}
