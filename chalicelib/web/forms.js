// Forms generated from the registries' declarations: each entry of GET /api/operations carries
// its parameters as JSON Schema (type, minimum, maximum, enum, default, description), so a new
// operation or analyzer gets its form without touching the page.

import { h } from "./dom.js";

let counter = 0;

function control(name, schema, required, idPrefix) {
  const id = `${idPrefix}-${name}`;
  const hintId = `${id}-hint`;
  const described = schema.description ? hintId : undefined;
  const hint = schema.description ? h("span", { id: hintId, class: "hint" }, schema.description) : null;
  const label = h("label", { for: id }, name.replaceAll("_", " "), required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null);
  let input;
  if (schema.enum) {
    input = h("select", { id, name, "aria-describedby": described, required },
      required ? null : h("option", { value: "" }, schema.default === undefined ? "—" : `default (${schema.default})`),
      schema.enum.map((choice) => h("option", { value: String(choice), selected: choice === schema.default && required }, String(choice))));
  } else if (schema.type === "boolean") {
    input = h("input", { id, name, type: "checkbox", checked: schema.default === true, "aria-describedby": described });
    return h("div", { class: "field-check" }, input, label, hint);
  } else if (schema.type === "integer" || schema.type === "number") {
    input = h("input", {
      id, name, type: "number", inputmode: schema.type === "integer" ? "numeric" : "decimal",
      min: schema.minimum, max: schema.maximum, step: schema.type === "integer" ? "1" : "any",
      placeholder: schema.default === undefined ? "" : String(schema.default), required, "aria-describedby": described,
    });
  } else if (schema.type === "array" || schema.type === "object") {
    input = h("textarea", {
      id, name, rows: "3", spellcheck: "false", required, "aria-describedby": described,
      placeholder: schema.default === undefined ? (schema.type === "array" ? "[ … ] (JSON)" : "{ … } (JSON)") : JSON.stringify(schema.default),
    });
  } else {
    input = h("input", { id, name, type: "text", required, placeholder: schema.default ?? "", "aria-describedby": described });
  }
  return h("div", { class: "field" }, label, input, hint);
}

// The fields of one entry's parameters.
export function paramFields(entry) {
  counter += 1;
  const schema = entry.params || { properties: {} };
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(
    ([name, property]) => control(name, property, required.has(name), `p${counter}-${entry.name}`));
  return fields.length ? fields : [h("p", { class: "hint" }, "This one has no parameters.")];
}

// The parameters a form holds: empty optional fields are left out (the API fills in defaults).
export function readParams(form, entry) {
  const properties = (entry.params && entry.params.properties) || {};
  const params = {};
  for (const [name, schema] of Object.entries(properties)) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    if (schema.type === "boolean" && !schema.enum) {
      if (input.checked !== (schema.default === true)) params[name] = input.checked;
      continue;
    }
    const raw = input.value.trim();
    if (raw === "") continue;
    if (schema.type === "integer" || schema.type === "number") {
      params[name] = Number(raw);
    } else if (schema.type === "array" || schema.type === "object") {
      try {
        params[name] = JSON.parse(raw);
      } catch {
        throw new Error(`${name} must be JSON`);
      }
    } else if (schema.enum && schema.type !== "string") {
      params[name] = JSON.parse(raw);
    } else {
      params[name] = raw;
    }
  }
  return params;
}

// A form to pick an entry from a catalogue and fill in its parameters.
// `groups`: [{label, entries}], `onSubmit(entry, params)` returns a promise.
export function catalogueForm({ id, legend, groups, submitLabel, onSubmit }) {
  const entries = new Map(groups.flatMap((group) => group.entries.map((entry) => [entry.name, entry])));
  const select = h("select", { id: `${id}-name`, name: "__entry", required: true },
    groups.filter((group) => group.entries.length).map((group) => h("optgroup", { label: group.label },
      group.entries.map((entry) => h("option", { value: entry.name }, entry.name)))));
  const description = h("p", { class: "hint", id: `${id}-description` });
  const params = h("div", { class: "params" });
  const status = h("p", { class: "form-status", role: "status" });
  const button = h("button", { type: "submit", class: "button" }, submitLabel);
  const form = h("form", { class: "card stack", id, "aria-labelledby": `${id}-legend` },
    h("h3", { id: `${id}-legend` }, legend),
    h("div", { class: "field" }, h("label", { for: `${id}-name` }, "Which"), select, description),
    params, h("div", { class: "actions" }, button), status);
  select.setAttribute("aria-describedby", `${id}-description`);

  const show = () => {
    const entry = entries.get(select.value);
    description.textContent = entry ? entry.description || "" : "";
    params.replaceChildren(...(entry ? paramFields(entry) : []));
  };
  select.addEventListener("change", show);
  show();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const entry = entries.get(select.value);
    let values;
    try {
      values = readParams(form, entry);
    } catch (error) {
      status.textContent = error.message;
      status.className = "form-status is-error";
      return;
    }
    button.disabled = true;
    status.className = "form-status";
    status.textContent = `Submitting ${entry.name}…`;
    try {
      const message = await onSubmit(entry, values);
      status.textContent = message || `${entry.name} submitted`;
    } catch (error) {
      status.textContent = error.message;
      status.className = "form-status is-error";
    } finally {
      button.disabled = false;
    }
  });
  return { form, select };
}
