/*
 * ScheduleForm: a new post (format, media, caption, first comment, reel cover, link,
 * targets, time in the device's zone; DESIGN §13.2), checked lightly here and fully by the
 * server, whose `fields` messages are shown next to the inputs as given (a media row's
 * next to that row). A request that got no answer is retried with the same
 * Idempotency-Key, so it is never posted twice. "Ubah" on a queued post loads it here: the
 * form then sends a PATCH (DESIGN §13.3) with every field it shows, null for what was emptied.
 */

import { api } from "./api.js";
import { $, localInputToIso, newIdempotencyKey, show, toLocalInputValue, truncate, withBusy } from "./dom.js";
import { actionButton, errorSpec, facebookLink, messageFor, showNotice } from "./errors.js";
import {
  IMAGE,
  MAX_MEDIA,
  VIDEO,
  bindMediaEditor,
  firstMediaControl,
  initMediaEditor,
  isSingleVideo,
  mediaField,
  mediaRowCount,
  readMedia,
  resetMedia,
  setMedia,
  setMediaRules,
} from "./media-editor.js";
import { loadPosts } from "./posts-list.js";
import { state } from "./state.js";
import { loadStatus, renderSignedOut, startConnect } from "./status-card.js";

const MAX_CAPTION = 2200;
const MAX_COMMENT = 2200;
// The server's flat dotted `fields` keys ("targets.0" is under "targets") and the input each belongs to;
// "media.N.…" goes to media row N, "media" and "media_url" to the list as a whole.
const FIELD_INPUTS = {
  format: "format",
  cover_url: "cover-url",
  caption: "caption",
  first_comment: "first-comment",
  link: "link",
  targets: "targets",
  publish_at: "publish-at",
};

/** What each format takes (DESIGN §13.2): how many media, which fields apply, the hints. */
const FORMATS = {
  post: {
    hint: "Foto, video, atau carousel (2–10 media) di feed.",
    limit: MAX_MEDIA,
    limitText: `Maksimal ${MAX_MEDIA} media.`,
    defaultType: IMAGE,
    text: true,
  },
  reel: {
    hint: "Satu video vertikal (9:16, 3–90 detik).",
    limit: 1,
    limitText: "Reel memakai 1 video.",
    defaultType: VIDEO,
    text: true,
  },
  story: {
    hint: "Satu foto atau video yang tampil 24 jam.",
    limit: 1,
    limitText: "Story memakai 1 foto atau video.",
    defaultType: IMAGE,
    text: false,
  },
};

function updateCounter(inputId, counterId, max) {
  const length = Array.from($(inputId).value).length;
  const counter = $(counterId);
  counter.textContent = `${length}/${max}`;
  counter.classList.toggle("over", length > max);
}

function updateCaptionCount() {
  updateCounter("caption", "caption-count", MAX_CAPTION);
}

function updateCommentCount() {
  updateCounter("first-comment", "first-comment-count", MAX_COMMENT);
}

function chosenFormat() {
  const checked = document.querySelector("#schedule-form input[name=format]:checked");
  return checked && FORMATS[checked.value] ? checked.value : "post";
}

/** Show (and enable) only what the chosen format takes; hidden fields are disabled and not sent. */
function toggleField(fieldId, inputId, on) {
  show($(fieldId), on);
  $(inputId).disabled = !on;
}

function applyFormat() {
  const format = chosenFormat();
  const rules = FORMATS[format];
  $("format-hint").textContent = rules.hint;
  setMediaRules(rules);
  toggleField("caption-field", "caption", rules.text);
  toggleField("first-comment-field", "first-comment", rules.text);
  toggleField("link-field", "link", rules.text);
  show($("story-note"), !rules.text);
  // A cover goes with what Instagram makes a reel of: a reel, or a post of one video.
  toggleField("cover-field", "cover-url", format === "reel" || (format === "post" && isSingleVideo()));
}

function defaultPublishAt() {
  const date = new Date(Date.now() + 15 * 60 * 1000);
  date.setSeconds(0, 0);
  return toLocalInputValue(date);
}

function clearFieldErrors() {
  for (const node of document.querySelectorAll("#schedule-form .field-error")) {
    node.textContent = "";
    show(node, false);
  }
  for (const node of document.querySelectorAll("#schedule-form [aria-invalid]")) node.removeAttribute("aria-invalid");
  show($("schedule-error"), false);
}

/** Where a `fields` key's message goes: its error line, the control to focus, whether to mark it invalid. */
function fieldSlot(key, mediaRows) {
  const head = key.split(".")[0];
  if (head === "media" || head === "media_url") {
    const inRow = key.includes(".") ? mediaField(key, mediaRows) : null;
    if (inRow) return { ...inRow, mark: true };
    const control = firstMediaControl();
    return { errorNode: $("media-error"), input: control, mark: control.tagName === "INPUT" };
  }
  const inputId = FIELD_INPUTS[head];
  if (!inputId) return null;
  if (inputId === "targets") return { errorNode: $("targets-error"), input: $("target-facebook"), mark: false };
  if (inputId === "format") {
    return { errorNode: $("format-error"), input: document.querySelector("input[name=format]:checked"), mark: false };
  }
  // A field the format has hidden cannot be fixed where it stands: say it under the form.
  if ($(inputId).disabled) return null;
  return { errorNode: $(`${inputId}-error`), input: $(inputId), mark: true };
}

/**
 * Put each `fields` entry ("caption", "targets.0", "media.1.url", "_schema", …) next to its
 * input, in the server's own words (it answers in the page's language); what has no input
 * goes under the form. `mediaRows` are the rows the sent `media` items came from.
 * Returns the first invalid control in the form's order.
 */
function showFieldErrors(fields, mediaRows = []) {
  const leftovers = [];
  const invalid = [];
  for (const [key, messages] of Object.entries(fields || {})) {
    const text = (Array.isArray(messages) ? messages : [String(messages)]).join(" ");
    const slot = fieldSlot(key, mediaRows);
    if (!slot || !slot.errorNode) {
      leftovers.push(text);
      continue;
    }
    const { errorNode, input, mark } = slot;
    errorNode.textContent = errorNode.hidden || !errorNode.textContent ? text : `${errorNode.textContent} ${text}`;
    show(errorNode);
    if (mark) input.setAttribute("aria-invalid", "true");
    invalid.push(input);
  }
  if (leftovers.length) showScheduleError(leftovers.join(" "));
  invalid.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
  return invalid[0] || null;
}

function showScheduleError(text, controls = []) {
  const box = $("schedule-error");
  box.replaceChildren(document.createTextNode(text), ...controls);
  show(box);
}

/** The request body (only what the chosen format takes) and the media rows its `media` came from. */
function readScheduleForm() {
  const format = chosenFormat();
  const targets = ["facebook", "instagram"].filter((name) => $(`target-${name}`).checked);
  const body = { format, publish_at: localInputToIso($("publish-at").value), targets };
  const media = readMedia();
  if (media.items.length) body.media = media.items;
  if (FORMATS[format].text) {
    body.caption = $("caption").value;
    const firstComment = $("first-comment").value.trim();
    if (firstComment) body.first_comment = firstComment;
    const link = $("link").value.trim();
    if (link) body.link = link;
  }
  const coverUrl = $("cover-url").disabled ? "" : $("cover-url").value.trim();
  if (coverUrl) body.cover_url = coverUrl;
  return { body, mediaRows: media.rows };
}

function checkScheduleForm(body) {
  const problems = {};
  if (!body.publish_at) problems.publish_at = ["Isi waktu terbit."];
  if (!body.targets.length) problems.targets = ["Pilih minimal satu tujuan."];
  if (Array.from(body.caption || "").length > MAX_CAPTION) problems.caption = ["Caption maksimal 2.200 karakter."];
  if (Array.from(body.first_comment || "").length > MAX_COMMENT) {
    problems.first_comment = ["Komentar pertama maksimal 2.200 karakter."];
  }
  const rules = FORMATS[body.format];
  if (mediaRowCount() > rules.limit) problems.media = [`${rules.limitText} Hapus media lainnya.`];
  return problems;
}

function idempotencyKeyFor(body) {
  const serialized = JSON.stringify(body);
  if (state.unanswered && state.unanswered.body === serialized) return state.unanswered.key;
  state.unanswered = { key: newIdempotencyKey(), body: serialized };
  return state.unanswered.key;
}

/** Empty again for the next post; the format and targets stay as chosen. */
function resetScheduleForm() {
  $("caption").value = "";
  $("first-comment").value = "";
  $("cover-url").value = "";
  $("link").value = "";
  $("publish-at").value = defaultPublishAt();
  resetMedia();
  applyFormat();
  updateCaptionCount();
  updateCommentCount();
}

// --- changing a queued post ---

/** The merge patch for the post being edited: each field the form shows, null where it is empty. */
function patchFrom(body) {
  const patch = {
    format: body.format,
    targets: body.targets,
    media: body.media || null,
    caption: body.caption === undefined ? null : body.caption,
    first_comment: body.first_comment || null,
    link: body.link || null,
    cover_url: body.cover_url || null,
  };
  // The input holds minutes only: the stored time is sent again only once the seller changed it.
  if ($("publish-at").value !== state.editing.publishAtInput) patch.publish_at = body.publish_at;
  return patch;
}

function setEditMode(post) {
  const editing = Boolean(post);
  $("schedule-title").textContent = editing ? "Ubah postingan" : "Jadwalkan postingan";
  $("schedule-submit").textContent = editing ? "Simpan perubahan" : "Jadwalkan";
  $("schedule-editing-caption").textContent = editing ? `“${truncate(post.caption || "tanpa caption", 60)}”` : "";
  show($("schedule-editing"), editing);
  show($("schedule-cancel-edit"), editing);
}

/** Load a queued post into the form (ScheduleForm in edit mode). */
export function startEdit(post) {
  clearFieldErrors();
  const format = FORMATS[post.format] ? post.format : "post";
  document.querySelector(`#schedule-form input[name=format][value=${format}]`).checked = true;
  applyFormat();
  setMedia(post.media || []);
  $("caption").value = post.caption || "";
  $("first-comment").value = post.first_comment || "";
  $("link").value = post.link || "";
  $("cover-url").value = post.cover_url || "";
  for (const name of ["facebook", "instagram"]) {
    const target = post.targets && post.targets[name];
    $(`target-${name}`).checked = Boolean(target && target.status !== "skipped");
  }
  const publishAt = toLocalInputValue(new Date(post.publish_at));
  $("publish-at").value = publishAt;
  state.editing = { jobId: post.job_id, publishAtInput: publishAt };
  applyFormat();
  updateCaptionCount();
  updateCommentCount();
  setEditMode(post);
  $("schedule-section").scrollIntoView({ block: "start" });
  (document.querySelector("#schedule-form input[name=format]:checked") || $("caption")).focus();
}

/** Back to scheduling a new post; focus goes back to the list. */
function stopEdit({ focusList = true } = {}) {
  const jobId = state.editing && state.editing.jobId;
  state.editing = null;
  setEditMode(null);
  clearFieldErrors();
  resetScheduleForm();
  if (!focusList) return;
  const button = jobId && document.querySelector(`#posts [data-job-id="${CSS.escape(jobId)}"] [data-action=edit]`);
  (button || $("posts-refresh")).focus();
}

async function submitEdit(body, mediaRows) {
  const { jobId } = state.editing;
  await withBusy($("schedule-submit"), async () => {
    try {
      await api("PATCH", `/schedule/${encodeURIComponent(jobId)}`, { body: patchFrom(body) });
      showNotice("Perubahan disimpan.");
      stopEdit({ focusList: false });
      await loadPosts();
    } catch (error) {
      if (error.code === "not_editable" || error.code === "not_found") {
        stopEdit({ focusList: false });
        showNotice(messageFor(error.code), "info");
        await loadPosts();
        return;
      }
      await handleScheduleError(error, mediaRows);
    }
  });
}

async function submitSchedule(event) {
  event.preventDefault();
  clearFieldErrors();
  const { body, mediaRows } = readScheduleForm();
  const problems = checkScheduleForm(body);
  if (Object.keys(problems).length) {
    const first = showFieldErrors(problems, mediaRows);
    if (first) first.focus();
    return;
  }
  if (state.editing) {
    await submitEdit(body, mediaRows);
    return;
  }
  const key = idempotencyKeyFor(body);
  await withBusy($("schedule-submit"), async () => {
    try {
      await api("POST", "/schedule", { body, headers: { "Idempotency-Key": key } });
      state.unanswered = null;
      resetScheduleForm();
      showNotice("Postingan dijadwalkan.");
      await loadPosts();
    } catch (error) {
      await handleScheduleError(error, mediaRows);
    }
  });
}

async function handleScheduleError(error, mediaRows) {
  // Only a request that got no answer may have been stored: keep its key for a retry.
  if (error.status !== 0 && error.status < 500) state.unanswered = null;
  if (["validation_error", "media_unreachable"].includes(error.code) && error.fields) {
    const first = showFieldErrors(error.fields, mediaRows);
    if (first) first.focus();
    return;
  }
  const controls = [];
  if (["token_expired", "permissions_missing", "not_connected", "meta_action_required"].includes(error.code)) {
    await loadStatus(); // the card now shows what to do
  } else if (error.status === 401) {
    renderSignedOut();
    return;
  }
  if (error.code === "token_expired" || error.code === "permissions_missing") {
    controls.push(document.createTextNode(" "), actionButton("Connect ulang", (b) => startConnect(b)));
  } else if (errorSpec(error.code).action === "fix_on_meta") {
    controls.push(document.createTextNode(" "), facebookLink());
  }
  showScheduleError(messageFor(error.code), controls);
}

/**
 * The device's time zone in the hint, a default time a quarter of an hour ahead, one empty
 * media row, the fields of the default format, the counters.
 */
export function initScheduleForm() {
  try {
    $("time-zone").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "lokal";
  } catch (_noIntl) {
    /* keep "lokal" */
  }
  $("publish-at").value = defaultPublishAt();
  initMediaEditor({ onChange: applyFormat });
  applyFormat();
  updateCaptionCount();
  updateCommentCount();
}

export function bindScheduleForm() {
  $("caption").addEventListener("input", updateCaptionCount);
  $("first-comment").addEventListener("input", updateCommentCount);
  for (const radio of document.querySelectorAll("#schedule-form input[name=format]")) {
    radio.addEventListener("change", applyFormat);
  }
  bindMediaEditor();
  $("schedule-form").addEventListener("submit", submitSchedule);
  $("schedule-cancel-edit").addEventListener("click", () => stopEdit());
}
