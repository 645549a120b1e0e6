// Kinship web UI: the few things that react while typing. Everything works without it
// (forms submit normally); this only saves the round trip of a full page.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// Search as you type: <input data-live="/search/results" data-target="results">.
for (const input of document.querySelectorAll("input[data-live]")) {
  const target = document.getElementById(input.dataset.target);
  let latest = 0;
  input.addEventListener("input", debounce(async () => {
    const asked = ++latest;
    const url = `${input.dataset.live}?q=${encodeURIComponent(input.value)}`;
    const response = await fetch(url, { credentials: "same-origin" });
    if (asked === latest && response.ok) {
      target.innerHTML = await response.text();
      history.replaceState(null, "", `?q=${encodeURIComponent(input.value)}`);
    }
  }, 200));
}

// Live segment preview: <textarea data-preview="/segments/preview" aria-describedby="preview">.
for (const area of document.querySelectorAll("textarea[data-preview]")) {
  const output = document.getElementById(area.getAttribute("aria-describedby"));
  let latest = 0;
  const preview = async () => {
    const asked = ++latest;
    const response = await fetch(area.dataset.preview, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ expression: area.value }),
    });
    if (asked === latest) {
      output.innerHTML = await response.text();
    }
  };
  area.addEventListener("input", debounce(preview, 250));
  if (area.value.trim()) preview();
}

// A connection's mapping previews itself as it is edited:
// <textarea data-mapping-preview="/connections/preview" data-name="shop" aria-controls="mapping-preview">.
for (const area of document.querySelectorAll("textarea[data-mapping-preview]")) {
  const output = document.getElementById(area.getAttribute("aria-controls"));
  let latest = 0;
  area.addEventListener("input", debounce(async () => {
    const asked = ++latest;
    const response = await fetch(area.dataset.mappingPreview, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ name: area.dataset.name, toml: area.value }),
    });
    if (asked === latest) output.innerHTML = await response.text();
  }, 400));
}

// Forms that remove something ask first: <form data-confirm="Remove ...?">.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

// The pipeline board: a movable card (<li data-movable> holding its "Move to" form) goes to
// another stage by dragging it onto that stage's column, or by ← / → while it has focus.
// Both only choose the form's stage and submit it, as its Move button would.
function moveCard(card, stage) {
  const form = card.querySelector("form.move");
  const select = form?.querySelector("select[name=stage]");
  if (!select || select.value === stage) return;
  select.value = stage;
  form.requestSubmit();
}
for (const card of document.querySelectorAll(".board li[data-movable]")) {
  card.addEventListener("dragstart", (event) => {
    event.dataTransfer.setData("text/plain", card.id);
    event.dataTransfer.effectAllowed = "move";
  });
  card.addEventListener("keydown", (event) => {
    if (event.target !== card || !["ArrowLeft", "ArrowRight"].includes(event.key)) return;
    const columns = [...document.querySelectorAll(".board .column")];
    const here = columns.indexOf(card.closest(".column"));
    const next = columns[here + (event.key === "ArrowRight" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      moveCard(card, next.dataset.stage);
    }
  });
}
for (const column of document.querySelectorAll(".board .column")) {
  column.addEventListener("dragover", (event) => {
    event.preventDefault();
    column.classList.add("drop");
  });
  column.addEventListener("dragleave", () => column.classList.remove("drop"));
  column.addEventListener("drop", (event) => {
    event.preventDefault();
    column.classList.remove("drop");
    const card = document.getElementById(event.dataTransfer.getData("text/plain"));
    if (card?.dataset.movable) moveCard(card, column.dataset.stage);
  });
}
// After a move the page reloads: focus goes back to the card that moved.
document.getElementById(document.querySelector("[data-focus]")?.dataset.focus ?? "")?.focus();
