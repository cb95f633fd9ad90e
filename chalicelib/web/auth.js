// Signing in when the API requires it (PIXELAKE_AUTH=required): a token from
// POST /api/auth/token {email, password}, or an API key sent as X-API-Key. Kept in
// sessionStorage: closing the tab signs out.

import { api, ApiError, credentials, endpointMissing } from "./api.js";
import { h, heading, notice } from "./dom.js";

export function renderAccount(container) {
  container.replaceChildren();
  if (!credentials.signedIn) {
    if (document.body.dataset.auth === "required") {
      container.append(h("a", { href: "#/signin", class: "button button-small" }, "Sign in"));
    }
    return;
  }
  const who = credentials.email || "API key";
  container.append(
    h("span", { class: "who" }, who),
    h("button", {
      type: "button", class: "button button-small button-quiet",
      onclick: () => { credentials.clear(); renderAccount(container); location.hash = "#/signin"; },
    }, "Sign out"),
  );
}

function field(label, attrs) {
  const id = `field-${attrs.name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, ...attrs }));
}

export async function renderSignIn(main, { returnTo = "#/", onSignedIn }) {
  const message = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card stack", novalidate: false },
    field("Email", { name: "email", type: "email", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true, minlength: 8 }),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "button", value: "signin" }, "Sign in"),
      h("button", { type: "submit", class: "button button-quiet", value: "register" }, "Create an account")),
  );
  const keyForm = h("form", { class: "card stack" },
    field("API key", { name: "api_key", type: "password", autocomplete: "off", required: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "button" }, "Use this key")),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const email = String(data.get("email")).trim();
    const password = String(data.get("password"));
    const register = event.submitter && event.submitter.value === "register";
    message.replaceChildren(notice(register ? "Creating your account…" : "Signing in…"));
    try {
      if (register) await api("api/auth/register", { method: "POST", body: { email, password } });
      const answer = await api("api/auth/token", { method: "POST", body: { email, password } });
      const token = answer.access_token;
      if (!token) throw new ApiError(500, "no_token", "The API answered without a token.");
      credentials.useToken(token, email);
      onSignedIn();
      location.hash = returnTo;
    } catch (error) {
      const text = endpointMissing(error)
        ? "Signing in is not available on this deployment yet."
        : error.message;
      message.replaceChildren(notice(text, "error"));
    }
  });

  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    credentials.useApiKey(String(new FormData(keyForm).get("api_key")).trim());
    try {
      await api("api/images", { query: { limit: 1 } });
      onSignedIn();
      location.hash = returnTo;
    } catch (error) {
      credentials.clear();
      message.replaceChildren(notice(error.status === 401 ? "That key was not accepted." : error.message, "error"));
    }
  });

  main.replaceChildren(
    heading("Sign in"),
    h("p", {}, "This Pixelake deployment needs you to sign in. Use your email and password, or an API key."),
    message,
    h("div", { class: "columns" },
      h("section", { "aria-labelledby": "signin-password" }, h("h2", { id: "signin-password" }, "Email and password"), form),
      h("section", { "aria-labelledby": "signin-key" }, h("h2", { id: "signin-key" }, "API key"), keyForm)),
  );
}
