/*
 * ScheduleForm: a new post (caption, image, link, targets, time in the device's zone),
 * checked lightly here and fully by the server, whose `fields` messages are shown next to
 * the inputs as given. A request that got no answer is retried with the same
 * Idempotency-Key, so it is never posted twice.
 */

import { api } from "./api.js";
import { $, localInputToIso, newIdempotencyKey, show, toLocalInputValue, withBusy } from "./dom.js";
import { actionButton, errorSpec, facebookLink, messageFor, showNotice } from "./errors.js";
import { loadPosts } from "./posts-list.js";
import { state } from "./state.js";
import { loadStatus, renderSignedOut, startConnect } from "./status-card.js";

const MAX_CAPTION = 2200;
// The server's flat dotted `fields` keys ("targets.0" is under "targets") and the input each belongs to.
const FIELD_INPUTS = {
  caption: "caption",
  media_url: "media-url",
  link: "link",
  targets: "targets",
  publish_at: "publish-at",
};

function updateCaptionCount() {
  const length = Array.from($("caption").value).length;
  const counter = $("caption-count");
  counter.textContent = `${length}/${MAX_CAPTION}`;
  counter.classList.toggle("over", length > MAX_CAPTION);
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

/**
 * Put each `fields` entry ("caption", "targets.0", "_schema", …) next to its input, in the
 * server's own words (it answers in the page's language); what has no input goes under the form.
 */
function showFieldErrors(fields) {
  const leftovers = [];
  let firstInvalid = null;
  for (const [key, messages] of Object.entries(fields || {})) {
    const text = (Array.isArray(messages) ? messages : [String(messages)]).join(" ");
    const inputId = FIELD_INPUTS[key.split(".")[0]];
    const errorNode = inputId ? $(`${inputId}-error`) : null;
    if (!errorNode) {
      leftovers.push(text);
      continue;
    }
    errorNode.textContent = errorNode.hidden || !errorNode.textContent ? text : `${errorNode.textContent} ${text}`;
    show(errorNode);
    const input = inputId === "targets" ? $("target-facebook") : $(inputId);
    if (inputId !== "targets") input.setAttribute("aria-invalid", "true");
    firstInvalid = firstInvalid || input;
  }
  if (leftovers.length) showScheduleError(leftovers.join(" "));
  return firstInvalid;
}

function showScheduleError(text, controls = []) {
  const box = $("schedule-error");
  box.replaceChildren(document.createTextNode(text), ...controls);
  show(box);
}

function readScheduleForm() {
  const caption = $("caption").value;
  const mediaUrl = $("media-url").value.trim();
  const link = $("link").value.trim();
  const targets = ["facebook", "instagram"].filter((name) => $(`target-${name}`).checked);
  const body = { publish_at: localInputToIso($("publish-at").value), caption, targets };
  if (mediaUrl) body.media_url = mediaUrl;
  if (link) body.link = link;
  return body;
}

function checkScheduleForm(body) {
  const problems = {};
  if (!body.publish_at) problems.publish_at = ["Isi waktu terbit."];
  if (!body.targets.length) problems.targets = ["Pilih minimal satu tujuan."];
  if (Array.from(body.caption).length > MAX_CAPTION) problems.caption = ["Caption maksimal 2.200 karakter."];
  return problems;
}

function idempotencyKeyFor(body) {
  const serialized = JSON.stringify(body);
  if (state.unanswered && state.unanswered.body === serialized) return state.unanswered.key;
  state.unanswered = { key: newIdempotencyKey(), body: serialized };
  return state.unanswered.key;
}

function resetScheduleForm() {
  $("caption").value = "";
  $("media-url").value = "";
  $("link").value = "";
  $("publish-at").value = defaultPublishAt();
  updateCaptionCount();
}

async function submitSchedule(event) {
  event.preventDefault();
  clearFieldErrors();
  const body = readScheduleForm();
  const problems = checkScheduleForm(body);
  if (Object.keys(problems).length) {
    const first = showFieldErrors(problems);
    if (first) first.focus();
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
      await handleScheduleError(error);
    }
  });
}

async function handleScheduleError(error) {
  // Only a request that got no answer may have been stored: keep its key for a retry.
  if (error.status !== 0 && error.status < 500) state.unanswered = null;
  if (error.code === "validation_error" && error.fields) {
    const first = showFieldErrors(error.fields);
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

/** The device's time zone in the hint, a default time a quarter of an hour ahead, the caption counter. */
export function initScheduleForm() {
  try {
    $("time-zone").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "lokal";
  } catch (_noIntl) {
    /* keep "lokal" */
  }
  $("publish-at").value = defaultPublishAt();
  updateCaptionCount();
}

export function bindScheduleForm() {
  $("caption").addEventListener("input", updateCaptionCount);
  $("schedule-form").addEventListener("submit", submitSchedule);
}
