/*
 * MediaListEditor: the post's media (DESIGN §13.2) as rows of URL, photo or video, and alt
 * text (photos only), added and removed with plain buttons. Row N's inputs are
 * `media-N-url`, `media-N-type`, `media-N-alt`, renumbered after a removal, and each has
 * its own error line for the server's `media.N.url` / `media.N.type` / `media.N.alt_text`.
 * Rows left without a URL are not sent, so `readMedia` also says which row each item came from.
 */

import { $, el, show } from "./dom.js";

export const MAX_MEDIA = 10;
export const IMAGE = "image";
export const VIDEO = "video";
const TYPE_LABELS = { [IMAGE]: "Foto", [VIDEO]: "Video" };
// The parts of a row, by the key the server uses for them in `media.N.<key>`.
const PARTS = { url: "url", type: "type", alt_text: "alt" };

const editor = {
  limit: MAX_MEDIA,
  limitText: "",
  defaultType: IMAGE,
  onChange: () => undefined,
};

function rows() {
  return Array.from($("media-list").children);
}

function part(row, name) {
  return row.querySelector(`[data-part="${name}"]`);
}

function partError(row, name) {
  return row.querySelector(`[data-error-for="${name}"]`);
}

function labelled(name, labelText, input, extra = []) {
  const error = el("p", { className: "field-error", attrs: { "data-error-for": name, hidden: true } });
  return el("div", { className: `media-field media-field-${name}`, attrs: { "data-field": name } }, [
    el("label", { text: labelText, attrs: { "data-label-for": name } }),
    input,
    ...extra,
    error,
  ]);
}

function newRow(type) {
  const url = el("input", {
    attrs: { type: "url", inputmode: "url", placeholder: "https://…/foto-produk.jpg", "data-part": "url",
      autocomplete: "off", spellcheck: "false" },
  });
  const kind = el("select", { attrs: { "data-part": "type" } },
    Object.entries(TYPE_LABELS).map(([value, label]) => el("option", { text: label, attrs: { value } })));
  kind.value = type;
  const alt = el("input", { attrs: { type: "text", maxlength: "1000", "data-part": "alt", autocomplete: "off" } });
  const altHint = el("p", { className: "hint", text: "Menjelaskan isi foto bagi pengguna pembaca layar (Instagram).",
    attrs: { "data-hint-for": "alt" } });
  const remove = el("button", { className: "button small danger-outline media-remove", text: "Hapus",
    attrs: { type: "button", "data-action": "remove-media" } });
  const row = el("li", { className: "media-row" }, [
    el("fieldset", { className: "plain-fieldset media-row-fieldset" }, [
      el("legend", { className: "media-row-title" }),
      el("div", { className: "media-row-fields" }, [
        labelled("url", "URL", url),
        labelled("type", "Jenis", kind),
        labelled("alt", "Teks alternatif (opsional)", alt, [altHint]),
      ]),
      el("div", { className: "media-row-actions" }, [remove]),
    ]),
  ]);
  applyType(row);
  return row;
}

/** Alt text is for photos only: a video row hides (and does not send) it. */
function applyType(row) {
  const isImage = part(row, "type").value === IMAGE;
  show(row.querySelector("[data-field=alt]"), isImage);
  part(row, "alt").disabled = !isImage;
}

/** Ids, labels and names follow each row's position. */
function renumber() {
  rows().forEach((row, index) => {
    const prefix = `media-${index}`;
    const number = index + 1;
    row.dataset.index = String(index);
    row.querySelector("legend").textContent = `Media ${number}`;
    for (const [name, input] of [["url", part(row, "url")], ["type", part(row, "type")], ["alt", part(row, "alt")]]) {
      const id = `${prefix}-${name}`;
      input.id = id;
      row.querySelector(`[data-label-for="${name}"]`).htmlFor = id;
      partError(row, name).id = `${id}-error`;
      const hint = row.querySelector(`[data-hint-for="${name}"]`);
      if (hint) hint.id = `${id}-hint`;
      input.setAttribute("aria-describedby", [hint ? hint.id : null, `${id}-error`].filter(Boolean).join(" "));
    }
    row.querySelector("[data-action=remove-media]").setAttribute("aria-label", `Hapus media ${number}`);
  });
  updateCounter();
}

function updateCounter() {
  const count = rows().length;
  $("media-count").textContent = `${count}/${editor.limit}`;
  const full = count >= editor.limit;
  $("media-add").disabled = full;
  $("media-limit").textContent = full ? editor.limitText : "";
  show($("media-limit"), full);
}

function announce(text) {
  $("media-live").textContent = text;
}

function addRow() {
  if (rows().length >= editor.limit) return;
  const row = newRow(editor.defaultType);
  $("media-list").append(row);
  renumber();
  announce(`Media ${rows().length} ditambahkan.`);
  part(row, "url").focus();
  editor.onChange();
}

/** Focus goes to the row that took its place (or the one before it), else to "Tambah media". */
function removeRow(row) {
  const index = Number(row.dataset.index);
  row.remove();
  renumber();
  announce(`Media ${index + 1} dihapus.`);
  const next = rows()[Math.min(index, rows().length - 1)];
  if (next) part(next, "url").focus();
  else $("media-add").focus();
  editor.onChange();
}

/**
 * What the current format allows: at most `limit` rows (the add button says why it stops),
 * new rows starting as `defaultType`; rows with no URL yet switch to it too.
 */
export function setMediaRules({ limit, limitText, defaultType }) {
  editor.limit = limit;
  editor.limitText = limitText;
  if (defaultType !== editor.defaultType) {
    editor.defaultType = defaultType;
    for (const row of rows()) {
      if (!part(row, "url").value.trim()) {
        part(row, "type").value = defaultType;
        applyType(row);
      }
    }
  }
  updateCounter();
}

export function mediaRowCount() {
  return rows().length;
}

/** Whether the post is one video (a reel cover applies to it). */
export function isSingleVideo() {
  const all = rows();
  return all.length === 1 && part(all[0], "type").value === VIDEO;
}

/** The `media` items to send, and the row each came from (rows without a URL are left out). */
export function readMedia() {
  const items = [];
  const sources = [];
  for (const row of rows()) {
    const url = part(row, "url").value.trim();
    if (!url) continue;
    const type = part(row, "type").value;
    const item = { url, type };
    const altText = part(row, "alt").value.trim();
    if (type === IMAGE && altText) item.alt_text = altText;
    items.push(item);
    sources.push(row);
  }
  return { items, rows: sources };
}

/**
 * The input and error line for a server key under `media` ("media.2.url", "media.2",
 * "media.2.alt_text"), given the rows the items were read from; null when it names no row.
 */
export function mediaField(key, sentRows) {
  const [, index, sub] = key.split(".");
  if (!/^\d+$/.test(index || "")) return null;
  const row = sentRows[Number(index)];
  if (!row || !row.isConnected) return null;
  let name = PARTS[sub] || "url";
  if (part(row, name).disabled) name = "url"; // e.g. alt text on a row now set to video
  return { input: part(row, name), errorNode: partError(row, name) };
}

/** The first row's URL input (or the add button when there is no row): where list-wide errors point. */
export function firstMediaControl() {
  const first = rows()[0];
  return first ? part(first, "url") : $("media-add");
}

/** Rows holding `items` (`{url, type, alt_text}`), as a post being edited has them; one empty row for none. */
export function setMedia(items) {
  const filled = (items || []).map((item) => {
    const row = newRow(item.type === VIDEO ? VIDEO : IMAGE);
    part(row, "url").value = item.url || "";
    part(row, "alt").value = item.alt_text || "";
    applyType(row);
    return row;
  });
  $("media-list").replaceChildren(...(filled.length ? filled : [newRow(editor.defaultType)]));
  renumber();
}

/** One empty row, as a fresh form starts. */
export function resetMedia() {
  $("media-list").replaceChildren(newRow(editor.defaultType));
  renumber();
}

export function initMediaEditor({ onChange }) {
  editor.onChange = onChange;
  resetMedia();
}

export function bindMediaEditor() {
  $("media-add").addEventListener("click", addRow);
  $("media-list").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action=remove-media]");
    if (button) removeRow(button.closest(".media-row"));
  });
  $("media-list").addEventListener("change", (event) => {
    if (event.target.matches("select[data-part=type]")) {
      applyType(event.target.closest(".media-row"));
      editor.onChange();
    }
  });
}
