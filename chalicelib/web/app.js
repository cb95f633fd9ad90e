// The page's router: views by URL fragment (#/images/3), so the page is one document served
// at the API's root on any stage, and each view is a plain function rendering into <main>.

import { credentials, whenUnauthorized } from "./api.js";
import { renderAccount, renderSignIn } from "./auth.js";
import { renderDataset, renderDatasets } from "./datasets.js";
import { h, heading, notice } from "./dom.js";
import { renderGallery } from "./gallery.js";
import { renderImage } from "./image.js";
import { renderImport, renderImports } from "./imports.js";
import { renderModel, renderModels } from "./models.js";
import { renderStats } from "./stats.js";
import { renderTrainingJob, renderTrainingJobs } from "./training.js";

const main = document.getElementById("main");
const account = document.getElementById("account");

const ROUTES = [
  { pattern: /^\/?$/, nav: "images", title: "Images", render: renderGallery },
  { pattern: /^\/images\/(?<id>[^/]+)$/, nav: "images", title: "Image", render: renderImage },
  { pattern: /^\/stats$/, nav: "stats", title: "Statistics", render: renderStats },
  { pattern: /^\/datasets$/, nav: "datasets", title: "Datasets", render: renderDatasets },
  { pattern: /^\/datasets\/(?<id>[^/]+)$/, nav: "datasets", title: "Dataset", render: renderDataset },
  { pattern: /^\/imports$/, nav: "imports", title: "Imports", render: renderImports },
  { pattern: /^\/imports\/(?<id>[^/]+)$/, nav: "imports", title: "Import", render: renderImport },
  { pattern: /^\/training$/, nav: "training", title: "Training", render: renderTrainingJobs },
  { pattern: /^\/training\/(?<id>[^/]+)$/, nav: "training", title: "Training job", render: renderTrainingJob },
  { pattern: /^\/models$/, nav: "models", title: "Models", render: renderModels },
  { pattern: /^\/models\/(?<name>[^/]+)$/, nav: "models", title: "Model", render: renderModel },
];

let leaveView = null;
let pendingReturn = "#/";

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

function markNavigation(nav) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function focusTitle() {
  const title = main.querySelector(".view-title");
  (title || main).focus({ preventScroll: false });
}

async function show() {
  if (leaveView) {
    leaveView();
    leaveView = null;
  }
  const { path, query } = parseHash();
  if (path === "/signin") {
    markNavigation(null);
    document.title = "Sign in · Pixelake";
    await renderSignIn(main, { returnTo: pendingReturn, onSignedIn: () => renderAccount(account) });
    focusTitle();
    return;
  }
  const route = ROUTES.find((candidate) => candidate.pattern.test(path));
  if (!route) {
    markNavigation(null);
    main.replaceChildren(heading("Page not found"), h("p", {}, h("a", { href: "#/" }, "Go to your images")));
    focusTitle();
    return;
  }
  const params = Object.fromEntries(Object.entries(path.match(route.pattern).groups || {}).map(([k, v]) => [k, decodeURIComponent(v)]));
  markNavigation(route.nav);
  document.title = `${route.title} · Pixelake`;
  main.setAttribute("aria-busy", "true");
  const wanted = location.hash;
  try {
    const leave = await route.render(main, params, query);
    if (location.hash !== wanted) {
      if (leave) leave();  // the user moved on while this view was loading
      return;
    }
    leaveView = leave || null;
    const named = main.querySelector(".view-title");
    if (named && named.textContent) document.title = `${named.textContent} · Pixelake`;
  } catch (error) {
    if (error.status === 401) return;  // the sign-in view has taken over
    console.error(error);
    main.replaceChildren(heading("Something went wrong"), notice(error.message || String(error), "error"),
      h("button", { type: "button", class: "button", onclick: show }, "Try again"));
  } finally {
    main.removeAttribute("aria-busy");
  }
  focusTitle();
}

whenUnauthorized(() => {
  credentials.clear();
  renderAccount(account);
  if (parseHash().path !== "/signin") {
    pendingReturn = location.hash || "#/";
    location.hash = "#/signin";
  }
});

// The skip link must not change the fragment: the fragment is the route.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  focusTitle();
});
window.addEventListener("hashchange", show);
renderAccount(account);
show();
