// The gallery: the upload zone and the images, newest first, with their status kept live.

import { api } from "./api.js";
import { announce, h, heading, notice, poller, statusBadge } from "./dom.js";
import { uploader } from "./upload.js";

const PAGE = 48;
const BUSY = new Set(["pending", "processing"]);

function smallestThumbnail(image) {
  const thumbnails = [...image.thumbnails].sort((a, b) => a.width - b.width);
  return thumbnails[0];
}

function imageCard(image) {
  const card = h("li", { class: "tile", dataset: { id: image.id } });
  updateCard(card, image);
  return card;
}

// Update a card in place: a relisting presigns new URLs, and swapping the src would reload the image.
function updateCard(card, image) {
  const name = image.filename || `image ${image.id}`;
  const previous = card.dataset.status;
  card.dataset.status = image.status;
  let link = card.querySelector("a");
  if (!link) {
    link = h("a", { href: `#/images/${image.id}`, class: "tile-link" });
    card.append(link);
  }
  link.setAttribute("aria-label", `${name}, ${image.status}`);
  const thumbnail = smallestThumbnail(image);
  let picture = link.querySelector(".tile-picture");
  if (!picture || (thumbnail && picture.tagName !== "IMG")) {
    const next = thumbnail
      ? h("img", { class: "tile-picture", src: thumbnail.url, alt: name, width: thumbnail.width, height: thumbnail.height, loading: "lazy" })
      : h("div", { class: "tile-picture tile-placeholder", "aria-hidden": "true" }, image.status === "failed" ? "!" : "…");
    if (picture) picture.replaceWith(next); else link.append(next);
  }
  let caption = link.querySelector(".tile-caption");
  const captionContent = [h("span", { class: "tile-name" }, name), statusBadge(image.status)];
  if (!caption) {
    caption = h("span", { class: "tile-caption" });
    link.append(caption);
  }
  caption.replaceChildren(...captionContent);
  card.title = image.error ? `${name}: ${image.error}` : name;
  return previous !== undefined && previous !== image.status;
}

export async function renderGallery(main) {
  const grid = h("ul", { class: "gallery", "aria-label": "Images" });
  const cards = new Map();
  const filter = h("select", { id: "status-filter" },
    ["all", "ready", "pending", "processing", "failed"].map((s) => h("option", { value: s === "all" ? "" : s }, s)));
  const more = h("button", { type: "button", class: "button button-quiet", hidden: true }, "Load more");
  const empty = notice("No images yet: upload some above.");
  empty.hidden = true;
  let nextCursor = null;

  const place = (images, { atEnd }) => {
    for (const image of images) {
      const card = cards.get(image.id);
      if (card) {
        if (updateCard(card, image)) {
          announce(`${image.filename || `Image ${image.id}`} is ${image.status}${image.error ? `: ${image.error}` : ""}`);
        }
        continue;
      }
      const fresh = imageCard(image);
      cards.set(image.id, fresh);
      if (atEnd) grid.append(fresh); else grid.prepend(fresh);
    }
    empty.hidden = cards.size > 0;
  };

  const loadFirst = async () => {
    const page = await api("api/images", { query: { limit: PAGE, status: filter.value } });
    // Newest first: prepend in reverse so the order stays right.
    place([...page.items].reverse().filter((i) => !cards.has(i.id)), { atEnd: false });
    place(page.items.filter((i) => cards.has(i.id)), { atEnd: false });
    if (cards.size <= page.items.length) {
      nextCursor = page.next_cursor;
      more.hidden = !nextCursor;
    }
  };

  // Refresh the newest page (new uploads appear, statuses change) until nothing is pending or processing.
  const live = poller(async () => {
    await loadFirst();
    return [...cards.values()].some((card) => BUSY.has(card.dataset.status));
  }, 1500);

  more.addEventListener("click", async () => {
    const page = await api("api/images", { query: { limit: PAGE, status: filter.value, cursor: nextCursor } });
    place(page.items, { atEnd: true });
    nextCursor = page.next_cursor;
    more.hidden = !nextCursor;
  });
  filter.addEventListener("change", async () => {
    cards.clear();
    grid.replaceChildren();
    nextCursor = null;
    await loadFirst();
    live.kick();
  });

  main.replaceChildren(
    heading("Images"),
    uploader({ onUploaded: () => live.kick() }),
    h("section", { class: "gallery-section", "aria-labelledby": "gallery-title" },
      h("div", { class: "section-head" },
        h("h2", { id: "gallery-title" }, "Your images"),
        h("div", { class: "field field-inline" }, h("label", { for: "status-filter" }, "Status"), filter)),
      empty, grid, more),
  );
  await loadFirst();
  live.kick();
  return () => live.stop();
}
