/*
 * The page's dialogs: focus kept inside while open and given back on close, the
 * PagePickerModal (pages without Instagram shown, not selectable), the Disconnect
 * confirmation and the confirmation before retrying a post that may be live already.
 */

import { api } from "./api.js";
import { $, el, show, withBusy } from "./dom.js";
import {
  BUSINESS_SUITE_URL,
  actionButton,
  businessSuiteLink,
  hideError,
  messageFor,
  showError,
  showNotice,
} from "./errors.js";
import { loadPosts } from "./posts-list.js";
import { state } from "./state.js";
import { loadStatus, renderSignedOut, startConnect } from "./status-card.js";

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), textarea:not([disabled]), " +
  "select:not([disabled]), [tabindex]:not([tabindex='-1'])";

function focusables(container) {
  return Array.from(container.querySelectorAll(FOCUSABLE)).filter((node) => !node.closest("[hidden]"));
}

/** Keep Tab / Shift+Tab inside an open dialog (showModal makes the page inert; this keeps it off the browser UI). */
function trapFocus(dialog) {
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const nodes = focusables(dialog);
    if (!nodes.length) return;
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
}

function openDialog(dialog, focusTarget) {
  dialog.returnFocusTo = document.activeElement instanceof HTMLElement && document.activeElement !== document.body
    ? document.activeElement : null;
  if (!dialog.open) dialog.showModal();
  const target = focusTarget || focusables(dialog)[0];
  if (target) target.focus();
}

function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

function restoreFocus(dialog) {
  const back = dialog.returnFocusTo;
  dialog.returnFocusTo = null;
  if (back && document.contains(back) && !back.disabled && !back.closest("[hidden]")) {
    back.focus();
    return;
  }
  const fallback = $("connect-button");
  if (fallback && !fallback.closest("[hidden]")) fallback.focus();
  else $("main").focus();
}

// PagePickerModal

function pageOption(page) {
  const inputId = `page-option-${page.id}`;
  const reasonId = `page-reason-${page.id}`;
  const disabled = !page.has_instagram;
  const input = el("input", { attrs: { type: "radio", name: "page_id", id: inputId, value: page.id,
    disabled, "aria-describedby": disabled ? reasonId : null } });
  const label = el("label", { attrs: { for: inputId } }, [
    el("span", { className: "page-option-name", text: page.name || page.id }),
    el("span", { className: "page-option-meta",
      text: `Page ID ${page.id} · ${page.has_instagram ? "Instagram Business terhubung" : "Tanpa Instagram"}` }),
  ]);
  const option = el("div", { className: `page-option${disabled ? " is-disabled" : ""}`,
    attrs: { "data-page-id": page.id } }, [input, label]);
  if (disabled) {
    option.append(el("p", { className: "page-option-reason", attrs: { id: reasonId } }, [
      document.createTextNode("Page Facebook belum terhubung ke Instagram Business. "),
      el("a", { text: "Buka Meta Business Suite", className: "external",
        attrs: { href: BUSINESS_SUITE_URL, target: "_blank", rel: "noopener noreferrer" } }),
    ]));
  }
  return option;
}

function renderPickerError(code) {
  const box = $("page-picker-error");
  box.dataset.errorCode = code;
  const controls = [];
  if (code === "instagram_not_connected_to_page") controls.push(businessSuiteLink());
  if (code === "selection_expired" || code === "invalid_state") {
    controls.push(actionButton("Connect ulang", (b) => {
      closeDialog($("page-picker"));
      startConnect(b);
    }));
  }
  if (code === "page_not_found") controls.push(el("span", { className: "action-text", text: "Pilih Page lain dari daftar." }));
  box.replaceChildren(el("p", { text: messageFor(code) }), ...controls);
  show(box);
}

function renderPickerMessage(text) {
  const box = $("page-picker-error");
  delete box.dataset.errorCode;
  box.replaceChildren(el("p", { text }));
  show(box);
}

function resetPicker() {
  $("page-options").replaceChildren();
  show($("page-picker-error"), false);
  show($("page-picker-submit"));
  $("page-picker-submit").disabled = false;
}

export async function openPagePicker() {
  const dialog = $("page-picker");
  resetPicker();
  show($("page-picker-loading"));
  openDialog(dialog, $("page-picker-cancel"));
  try {
    const { pages } = await api("GET", "/pages");
    show($("page-picker-loading"), false);
    $("page-options").replaceChildren(...pages.map(pageOption));
    if (!pages.some((page) => page.has_instagram)) {
      renderPickerError("instagram_not_connected_to_page");
      $("page-picker-submit").disabled = true;
    }
    const first = dialog.querySelector("input[name=page_id]:not([disabled])");
    if (first) first.focus();
  } catch (error) {
    show($("page-picker-loading"), false);
    renderPickerError(error.code);
    if (error.code === "selection_expired") show($("page-picker-submit"), false);
    const control = $("page-picker-error").querySelector("button, a");
    (control || $("page-picker-cancel")).focus();
  }
}

async function submitPagePicker(event) {
  event.preventDefault();
  const chosen = $("page-picker-form").querySelector("input[name=page_id]:checked");
  if (!chosen) {
    renderPickerMessage("Pilih salah satu Page terlebih dahulu.");
    const first = $("page-picker").querySelector("input[name=page_id]:not([disabled])");
    if (first) first.focus();
    return;
  }
  show($("page-picker-error"), false);
  await withBusy($("page-picker-submit"), async () => {
    try {
      const result = await api("POST", "/select-page", { body: { page_id: chosen.value } });
      $("page-picker").dataset.completed = "true";
      closeDialog($("page-picker"));
      hideError();
      showNotice(`Page ${result.page_name || ""} berhasil terhubung ke Resellio.`.replace("  ", " "));
      await loadStatus();
      await loadPosts();
    } catch (error) {
      renderPickerError(error.code);
      if (error.code === "selection_expired") show($("page-picker-submit"), false);
      if (error.status === 401) {
        closeDialog($("page-picker"));
        renderSignedOut();
      }
    }
  });
}

function onPickerClosed() {
  const dialog = $("page-picker");
  if (dialog.dataset.completed !== "true" && state.connection && state.connection.status !== "connected") {
    showNotice("Page belum dipilih, jadi koneksi belum selesai. Klik Connect untuk mengulang.", "info");
  }
  delete dialog.dataset.completed;
  restoreFocus(dialog);
}

// Disconnect confirmation

function openDisconnectConfirm() {
  openDialog($("disconnect-confirm"), $("disconnect-confirm-no"));
}

async function confirmDisconnect() {
  await withBusy($("disconnect-confirm-yes"), async () => {
    try {
      await api("POST", "/disconnect", { body: {} });
      closeDialog($("disconnect-confirm"));
      hideError();
      showNotice("Koneksi Facebook & Instagram sudah diputus.");
      await loadStatus();
      await loadPosts();
    } catch (error) {
      closeDialog($("disconnect-confirm"));
      if (error.status === 401) renderSignedOut();
      showError(error.code, { title: "Disconnect gagal", retry: confirmDisconnect });
    }
  });
}

// Retry confirmation: a target (or its first comment) is unconfirmed, so it may be live already.

let onRetryConfirmed = null;

/** Ask before retrying `post`; `onYes` runs the retry once the seller confirms. */
export function openRetryConfirm(post, onYes) {
  const labels = post.unconfirmedLabels && post.unconfirmedLabels.length ? post.unconfirmedLabels : ["Facebook"];
  $("retry-confirm-targets").textContent = labels.join(" dan ");
  onRetryConfirmed = onYes;
  openDialog($("retry-confirm"), $("retry-confirm-no"));
}

function confirmRetry() {
  const run = onRetryConfirmed;
  onRetryConfirmed = null;
  closeDialog($("retry-confirm"));
  if (run) run();
}

export function bindDialogs() {
  $("retry-confirm-no").addEventListener("click", () => closeDialog($("retry-confirm")));
  $("retry-confirm-yes").addEventListener("click", confirmRetry);
  $("retry-confirm").addEventListener("close", () => restoreFocus($("retry-confirm")));
  trapFocus($("retry-confirm"));
  $("disconnect-button").addEventListener("click", openDisconnectConfirm);
  $("disconnect-confirm-no").addEventListener("click", () => closeDialog($("disconnect-confirm")));
  $("disconnect-confirm-yes").addEventListener("click", confirmDisconnect);
  $("disconnect-confirm").addEventListener("close", () => restoreFocus($("disconnect-confirm")));
  $("page-picker-form").addEventListener("submit", submitPagePicker);
  $("page-picker-cancel").addEventListener("click", () => closeDialog($("page-picker")));
  $("page-picker").addEventListener("close", onPickerClosed);
  $("page-options").addEventListener("change", () => show($("page-picker-error"), false));
  trapFocus($("page-picker"));
  trapFocus($("disconnect-confirm"));
}
